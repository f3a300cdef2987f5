"""``python -m sipactors.grammar``: regenerate grammar/sip.lark."""

from sipactors.grammar.compile import main

raise SystemExit(main())
