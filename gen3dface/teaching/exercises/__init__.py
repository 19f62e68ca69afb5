"""The notebooks' exercise checkers, one module per notebook (``nb00`` … ``nb08``), all under the contract of
:mod:`gen3dface.teaching.checking`. A notebook imports its module as
``from gen3dface.teaching.exercises import nbNN as checks`` and ends each exercise cell with
``checks.check_<name>(<answer>)``."""
