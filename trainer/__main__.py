"""`python -m trainer`: the same as `causalwatch train`."""

import sys

from trainer.cli import main

sys.exit(main())
