import sys

from art_ssl.cli import main

sys.exit(main())
