"""The formal syntax spine: RFC ABNF (spec/abnf/) → Lark grammar (grammar/sip.lark) → hot-path regexes.

* ``abnf``: reads ABNF (RFC 5234, RFC 7405) with grammar/abnf.lark and turns rules into regular expressions;
* ``compile``: generates grammar/sip.lark (``python -m sipactors.grammar``);
* ``derive``: turns rules and terminals of sip.lark into the hot path's regular expressions.
"""

from sipactors.grammar.derive import DeriveError, SipGrammar, first_group, sip_grammar

__all__ = ["DeriveError", "SipGrammar", "first_group", "sip_grammar"]
