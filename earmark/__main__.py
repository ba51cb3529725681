import sys

from earmark.cli import console_main

sys.exit(console_main())
