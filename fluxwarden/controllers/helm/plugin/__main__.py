"""Entry point helm runs (plugin.yaml): ``python -P -m fluxwarden.controllers.helm.plugin CONFIG``."""

import sys

from fluxwarden.controllers.helm.plugin.run import main

sys.exit(main(sys.argv[1:]))
