"""For the notebooks: toy models (toys), the exercise checkers (exercises.nb00 … nb08) and their one contract (checking)."""
