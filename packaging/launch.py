"""Entry point of the frozen app (the same as `annotator-app`)."""

import multiprocessing
import sys

from annotator_app.main import main

if __name__ == "__main__":
    multiprocessing.freeze_support()
    sys.exit(main())
