"""Compiled regular expressions for the hot path, every one derived from grammar/sip.lark.

Nothing here spells SIP syntax by hand: each pattern is ``SipGrammar.compile(rule, captures)`` over a rule
or terminal of the generated grammar (sipactors.grammar.derive). The capture names are the only thing this
module chooses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from sipactors.grammar.derive import SipGrammar, sip_grammar

#: Header-value rules of grammar/sip-syntax.lark, one per structured header field.
VALUE_RULES = (
    "via_value", "from_value", "to_value", "reply_to_value", "contact_value", "route_value",
    "record_route_value", "path_value", "call_id_value", "cseq_value", "max_forwards_value",
    "content_length_value", "expires_value", "min_expires_value", "content_type_value", "accept_value",
    "allow_value", "supported_value", "require_value", "proxy_require_value", "unsupported_value",
    "content_encoding_value", "event_value", "allow_events_value", "subscription_state_value",
    "sip_etag_value", "sip_if_match_value", "accept_contact_value", "reject_contact_value",
    "request_disposition_value", "reason_value", "date_value", "authorization_value",
    "proxy_authorization_value", "www_authenticate_value", "proxy_authenticate_value", "extension_value",
)

_ADDRESS_CAPTURES = {
    "display_name": "display",
    "addr_spec": "uri",
    "bare_addr_spec": "bare",
    "header_params": "params",
    # the parts of a SIP or SIPS URI, in <> or bare: one pass over the value builds the whole address
    "SIP_SCHEME": "scheme",
    "USERINFO": "userinfo",
    "HOST": "host",
    "PORT": "port",
    "uri_parameters": "uparams",
    "uri_headers": "uheaders",
}


@dataclass(frozen=True)
class Syntax:
    grammar: SipGrammar
    request_line: re.Pattern[str]
    status_line: re.Pattern[str]
    header_name: re.Pattern[str]
    values: dict[str, re.Pattern[str]]
    sip_uri: re.Pattern[str]
    tel_uri: re.Pattern[str]
    absolute_uri: re.Pattern[str]
    contact_param: re.Pattern[str]
    route_param: re.Pattern[str]
    via_parm: re.Pattern[str]
    via_param_item: re.Pattern[str]
    header_param: re.Pattern[str]
    comma: re.Pattern[str]
    lws: re.Pattern[str]
    media_type: re.Pattern[str]
    reason_item: re.Pattern[str]
    contact_pref: re.Pattern[str]
    auth_value_head: re.Pattern[str]
    auth_param: re.Pattern[str]
    cseq: re.Pattern[str]
    name_addr: re.Pattern[str]
    header_param_at: re.Pattern[str]
    via_head: re.Pattern[str]
    token: re.Pattern[str]
    gen_value: re.Pattern[str]
    via_gen_value: re.Pattern[str]
    descriptor: re.Pattern[str]
    user: re.Pattern[str]
    param_checks: dict[tuple[str, str], tuple[str, re.Pattern[str]] | None]


def _element(g: SipGrammar, rule: str, captures: dict[str, str], follow: str) -> re.Pattern[str]:
    """``rule`` as one element of a list: it must end where the separator ``follow`` (or the text) does.

    Python's alternation is ordered, so an unanchored match can stop early: in
    ``received=2001:db8::9:255`` the token alternative of gen-value matches ``2001``. The lookahead makes
    the engine backtrack into the alternative that reaches the separator, as the grammar means.
    """
    return re.compile(f"(?:{g.regex(rule, captures)})(?=(?:{g.regex(follow)})|\\Z)", re.DOTALL)


@lru_cache(maxsize=1)
def syntax() -> Syntax:
    """Build (once) every pattern of the hot path from the generated grammar."""
    g = sip_grammar()
    checks: dict[tuple[str, str], tuple[str, re.Pattern[str]] | None] = {}
    for key, terminal in g.param_checks.items():
        checks[key] = None if terminal is None else (terminal, g.compile(terminal.rstrip("?")))
    return Syntax(
        grammar=g,
        request_line=g.compile(
            "request_line", {"METHOD": "method", "request_uri": "uri", "SIP_VERSION": "version"}
        ),
        status_line=g.compile(
            "status_line", {"SIP_VERSION": "version", "STATUS_CODE": "code", "REASON_PHRASE": "reason"}
        ),
        header_name=g.compile("HEADER_NAME"),
        values={rule: g.compile(rule) for rule in VALUE_RULES},
        sip_uri=g.compile(
            "sip_uri",
            {
                "SIP_SCHEME": "scheme",
                "USERINFO": "userinfo",
                "HOST": "host",
                "PORT": "port",
                "uri_parameters": "params",
                "uri_headers": "headers",
            },
        ),
        tel_uri=g.compile("TEL_URI"),
        absolute_uri=g.compile("ABSOLUTE_URI"),
        contact_param=_element(g, "contact_param", _ADDRESS_CAPTURES, "COMMA"),
        route_param=_element(g, "route_param", _ADDRESS_CAPTURES, "COMMA"),
        via_parm=_element(
            g,
            "via_parm",
            {
                "PROTOCOL_NAME": "protocol",
                "PROTOCOL_VERSION": "version",
                "TRANSPORT": "transport",
                "HOST": "host",
                "PORT": "port",
                "via_params": "params",
            },
            "COMMA",
        ),
        via_param_item=_element(g, "via_param_item", {"TOKEN": "name", "via_gen_value": "value"}, "SEMI"),
        header_param=_element(g, "header_param", {"TOKEN": "name", "gen_value": "value"}, "SEMI"),
        comma=g.compile("COMMA"),
        lws=g.compile("LWS"),
        media_type=_element(
            g, "media_type", {"M_TYPE": "type", "M_SUBTYPE": "subtype", "header_params": "params"}, "COMMA"
        ),
        reason_item=_element(g, "reason_item", {"TOKEN": "protocol", "header_params": "params"}, "COMMA"),
        contact_pref=_element(g, "contact_pref", {"header_params": "params"}, "COMMA"),
        auth_value_head=g.compile("AUTH_SCHEME"),
        auth_param=_element(g, "auth_param", {"TOKEN": "name"}, "COMMA"),
        cseq=g.compile("cseq_value", {"NUMBER": "seq", "METHOD": "method"}),
        name_addr=g.compile("name_addr", _ADDRESS_CAPTURES),
        header_param_at=g.compile("header_param", {"TOKEN": "name", "gen_value": "value"}),
        # via-parm up to its parameters: sent-protocol LWS sent-by
        via_head=re.compile(
            g.regex("sent_protocol", {"PROTOCOL_NAME": "protocol", "PROTOCOL_VERSION": "version", "TRANSPORT": "transport"})
            + g.regex("LWS")
            + g.regex("sent_by", {"HOST": "host", "PORT": "port"}),
            re.DOTALL,
        ),
        token=g.compile("TOKEN"),
        gen_value=g.compile("gen_value"),
        via_gen_value=g.compile("via_gen_value"),
        descriptor=g.compile("DESCRIPTOR"),
        user=g.compile("USER"),
        param_checks=checks,
    )
