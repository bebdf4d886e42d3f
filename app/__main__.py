import sys

from annotator_app.main import main

sys.exit(main())
