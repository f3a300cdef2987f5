"""``python -m sipactors.fsm``: regenerate models/ from spec/machines/."""

from sipactors.fsm.compile import main

raise SystemExit(main())
