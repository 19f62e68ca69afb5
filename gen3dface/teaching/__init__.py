"""For the notebooks: toy models and the exercise checkers."""
