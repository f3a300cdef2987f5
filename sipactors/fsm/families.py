"""Machine families: what the spec tables of one family of machines may say.

A table (spec/machines/*.toml) declares its family in ``[machine] family`` ("transaction" when it says
none, as the four RFC 3261 §17 tables do). A family is the language of its tables: the actions a row may
name, the timer actions (``start:X``) and the timers they may name, and the guards. The model compiler
refuses a row that names anything outside its family's vocabulary, and each family's machine class
(``KindMachine``, ``BindingMachine``, ...) implements exactly that vocabulary: an action ``name`` is its
method ``_do_name``, a guard its entry in the class's ``guards`` (tests/fsm checks both ways).

To add a family (dialogs, subscriptions: issue 5): write its ``Family`` here and register it in
``FAMILIES``, then a ``TableMachine`` subclass in its own module, and the tables that use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["BINDING", "DEFAULT_FAMILY", "DELIVERY", "FAMILIES", "PROXY", "PUBLICATION", "SUBSCRIPTION", "TRANSACTION", "Family"]


@dataclass(frozen=True)
class Family:
    """The vocabulary of one family of tables; every entry maps a name to what it means."""

    name: str
    about: str
    actions: Mapping[str, str]
    timer_actions: Mapping[str, str]
    guards: Mapping[str, str]
    #: The timers a row may name; None: those of spec/machines/timers.toml, whose values the compiler also
    #: reads (the transaction timers, RFC 3261 Table 4). A family whose timers take their value from the
    #: event that starts them (a binding's expiry) lists them here instead.
    timers: Mapping[str, str] | None


TRANSACTION = Family(
    name="transaction",
    about="SIP transactions (RFC 3261 §17 as amended by RFC 6026)",
    actions={
        "send_request": "send the request (again)",
        "send_ack": "send the ACK for the non-2xx final response just received (RFC 3261 §17.1.1.3)",
        "send_response": "send the response the TU passed, and remember it",
        "resend_response": "send the most recent response again (the 100 Trying if the TU sent none yet)",
        "send_100": "send a 100 Trying for the request (RFC 3261 §17.2.1)",
        "to_tu": "pass the message that arrived to the TU",
        "timeout_to_tu": "tell the TU the transaction timed out",
        "transport_error_to_tu": "tell the TU a transport error occurred",
        "terminate": "the transaction is destroyed (its running timers are cancelled)",
    },
    timer_actions={
        "start": "start X at its initial value for the transport in use (not at all if that value is none)",
        "cancel": "cancel X",
        "double": "restart X with twice its last interval (Timer A, RFC 3261 §17.1.1.2)",
        "double_capped": "restart X with MIN(2 * last interval, T2) (Timers E and G)",
        "set_t2": "restart X with T2 (Timer E in Proceeding, RFC 3261 §17.1.2.2)",
    },
    guards={"reliable": "the transport is reliable (TCP, TLS, SCTP, WS)", "unreliable": "the transport is UDP"},
    timers=None,
)

BINDING = Family(
    name="binding",
    about="one registration binding of an address-of-record to a contact (RFC 3261 §10.2, §10.3)",
    actions={
        "adopt": "make the binding the event carries this one's without writing it: the registrar committed it "
                 "with the rest of its REGISTER (RFC 3261 §10.3 step 7), or it was read from the store",
        "forget": "let go of the binding without writing: the registrar committed its removal with the rest of "
                  "the REGISTER (RFC 3261 §10.3 steps 6-7)",
        "store_remove": "remove this binding from the location store if it is still the one whose interval ran "
                        "out (a refresh committed meanwhile stays)",
        "tell_registrar": "tell the registrar the binding as it now is (none once removed), so its view of the AOR follows",
        "refuse": "change nothing and tell the sender the update was aborted (RFC 3261 §10.3 steps 6-7)",
        "terminate": "the binding's actor ends (its running timer is cancelled) and its registrar forgets it",
    },
    timer_actions={
        "start": "start X to fire when the binding expires (the event's binding, at the event's wall-clock now)",
        "restart": "cancel X if it runs, and start it for the event's binding",
        "cancel": "cancel X",
    },
    guards={
        "in_order": "the REGISTER is newer than the one that made the binding: another Call-ID, or the same "
                    "Call-ID and a higher CSeq (RFC 3261 §10.3 steps 6-7)",
        "out_of_order": "the same Call-ID and a CSeq not higher than the binding's (RFC 3261 §10.3 steps 6-7)",
    },
    timers={"expiry": "the binding's expiration interval, granted by the registrar (RFC 3261 §10.2.1.1, §10.3 step 7)"},
)

PROXY = Family(
    name="proxy",
    about="the response context of one request a stateful proxy forwards (RFC 3261 §16.6-§16.10)",
    actions={
        "forward_next": "create a branch for each target of the next group not tried yet and forward the "
                        "request to it (RFC 3261 §16.6; sequential forking across groups)",
        "note_provisional": "the branch has had a provisional response: from now on it may be CANCELled (§9.1)",
        "reset_timer_c": "restart the branch's Timer C for a provisional response other than 100 to an INVITE "
                         "(RFC 3261 §16.7 step 2)",
        "forward_provisional": "send the provisional response upstream, our Via removed, unless it is a 100 "
                               "(RFC 3261 §16.7 steps 5 and 9)",
        "forward_response": "send the 2xx upstream at once, our Via removed (RFC 3261 §16.7 step 5)",
        "record": "keep the branch's final response in the context, or, when configured to recurse on a 3xx, "
                  "add its contacts as targets instead (RFC 3261 §16.7 step 4); a 2xx or 6xx closes the context "
                  "to new branches",
        "cancel_forks": "after a 2xx or 6xx, CANCEL every pending branch unless the caller asked for no-cancel "
                        "(RFC 3261 §16.7 step 10, RFC 3841 §9.1)",
        "cancel_pending": "CANCEL every pending branch (RFC 3261 §16.10); one without a provisional response "
                          "yet is CANCELled when its first arrives (§9.1)",
        "cancel_deferred": "send the CANCEL a branch was waiting for, now that a provisional response came (§9.1)",
        "cancel_branch": "CANCEL the branch whose Timer C fired (RFC 3261 §16.8)",
        "mark_cancelled": "the upstream client CANCELled: the final response will be 487 (RFC 3261 §16.10, §9.2)",
        "send_best": "send the best final response upstream (RFC 3261 §16.7 steps 6-7, 9)",
        "terminate": "the context is over: its actor ends and the proxy forgets it",
    },
    timer_actions={},
    guards={
        "six_hundred_pending": "the response is a 6xx and other branches are still pending (RFC 3261 §16.7 step 5)",
        "other_pending": "the response is not a 6xx and other branches are still pending",
        "next_target": "no other branch is pending, the response is a 3xx-5xx, and a target not yet tried remains "
                       "(a later group, or a 3xx contact when recursing)",
        "last_branch": "no other branch is pending and no further target will be tried",
    },
    timers={},
)

SUBSCRIPTION = Family(
    name="subscription",
    about="a notifier's subscription (RFC 6665 §4.2) and the dialog its SUBSCRIBE created (RFC 3261 §12): one "
          "actor drives both tables, so they share one vocabulary",
    actions={
        # the subscription table
        "accept": "answer the SUBSCRIBE 200 with the granted Expires and our Contact (RFC 6665 §4.2.1.1; "
                  "202 is deprecated, §8.3.1)",
        "refuse": "answer the SUBSCRIBE 403: the package's rules block the watcher (RFC 6665 §4.2.1.3)",
        "adopt": "take the expiry and authorization the event carries (a SUBSCRIBE just accepted, a refresh, "
                 "or the record the store kept)",
        "authorize": "take the authorization the event carries (the package's answer to reauthorize)",
        "notify": "send a NOTIFY with the current Subscription-State (active or pending;expires=N) and, when "
                  "active, the package's body (RFC 6665 §4.2.1.2, §4.2.2); queued while another is in flight",
        "notify_timeout": "send the final NOTIFY: terminated;reason=timeout (RFC 6665 §4.2.1.4, §4.4.3)",
        "notify_rejected": "send the final NOTIFY: terminated;reason=rejected (RFC 6665 §4.1.3, §4.2.1.3)",
        "notify_deactivated": "send the final NOTIFY: terminated;reason=deactivated (RFC 6665 §4.1.3)",
        "notify_noresource": "send the final NOTIFY: terminated;reason=noresource (RFC 6665 §4.1.3)",
        "next_notify": "the NOTIFY in flight is over: send the one queued behind it, if any (RFC 6665 §4.2.2)",
        "save": "write the subscription (its dialog, expiry and state) to the store",
        "delete": "remove the subscription from the store",
        "tell_started": "tell the package the subscription began or its authorization changed",
        "tell_ended": "tell the package the subscription ended, with the reason",
        "terminate": "the subscription is over: its actor ends once its last NOTIFY has gone, and the notifier "
                     "forgets it",
        # the dialog table
        "establish": "the UAS side of the dialog (RFC 3261 §12.1.1): route set from Record-Route, remote "
                     "target from Contact, remote CSeq from the SUBSCRIBE, local CSeq chosen",
        "take_cseq": "remember the in-dialog request's CSeq as the remote CSeq (RFC 3261 §12.2.2)",
        "refresh_target": "replace the remote target by the request's Contact (RFC 3261 §12.2.2 target refresh; "
                          "RFC 6665 §4.1.2.2: a re-SUBSCRIBE is one)",
        "reject_500": "answer 500: the in-dialog request's CSeq is lower than the remote CSeq (RFC 3261 §12.2.2)",
        "next_cseq": "increment the local CSeq for a request we send in the dialog (RFC 3261 §12.2.1.1)",
        "restore_dialog": "take the dialog as the store kept it",
    },
    timer_actions={
        "start": "start X to fire at the subscription's expiry (wall-clock, given with the event)",
        "restart": "cancel X if it runs, and start it for the new expiry",
        "cancel": "cancel X",
    },
    guards={
        "allowed": "the package allows the watcher (ALLOW or POLITE_BLOCK: active, RFC 5025 §3.2.1)",
        "awaiting": "the package wants the resource's owner to decide (PENDING, RFC 6665 §4.2.1.3)",
        "blocked": "the package blocks the watcher (BLOCK, RFC 6665 §4.2.1.3)",
        "in_order": "the request's CSeq is above the remote CSeq (RFC 3261 §12.2.2)",
        "out_of_order": "the request's CSeq is not above the remote CSeq (RFC 3261 §12.2.2: lower gets 500; "
                        "equal is a retransmission the transaction layer absorbs, or a fault)",
    },
    timers={"expiry": "the subscription's duration, granted in the 200's Expires (RFC 6665 §4.2.1.1, §4.2.1.4)"},
)

PUBLICATION = Family(
    name="publication",
    about="one publication of event state for a presentity, known by its entity-tag (RFC 3903 §6)",
    actions={
        "adopt": "make the publication the event carries this one's (a new entity-tag, body and expiry) without "
                 "writing it: the presence role stored it before the 200 (RFC 3903 §6 steps 5-6)",
        "forget": "let go of the publication without writing: the presence role removed it (RFC 3903 §6 step 5, "
                  "expiration 0)",
        "store_remove": "remove the publication from the store if it still has this entity-tag and expiry (its "
                        "interval ran out, RFC 3903 §6 step 5)",
        "tell_compositor": "tell the presence role (the event state compositor) the publication as it now is, none "
                           "once removed, so the composed state follows",
        "terminate": "the publication's actor ends (its running timer is cancelled) and the role forgets it",
    },
    timer_actions={
        "start": "start X to fire when the publication expires (the event's publication, at the event's wall-clock now)",
        "restart": "cancel X if it runs, and start it for the publication held",
        "cancel": "cancel X",
    },
    guards={
        "due": "the publication's expiry has come (wall clock): the timer is not early",
        "early": "the timer fired before the publication's expiry on the wall clock (the two clocks drift, or a "
                 "refresh was adopted while the firing was on its way)",
    },
    timers={"expiry": "the expiration interval the compositor chose for the publication (RFC 3903 §6 step 4)"},
)

#: Every family, by the name a table's ``[machine] family`` gives.
DELIVERY = Family(
    name="delivery",
    about="the delivery of one stored instant message to a device that registered (RFC 3428 §4, §7, §8)",
    actions={
        "send_message": "send the stored message to the device as a new MESSAGE (new Call-ID, From tag and branch; "
                        "From, To, Date, Content-Type and body as stored: RFC 3428 §4, RFC 3261 §8.1)",
        "delete_stored": "delete the message from the message store (delivered, refused or expired)",
        "keep": "leave the message in the store for the next registration of its AOR",
        "drop": "log that the message was refused and will never be delivered (RFC 3428 §7)",
        "terminate": "the message's machine is over",
    },
    timer_actions={},
    guards={},
    timers={},
)

#: Every family, by the name a table's ``[machine] family`` gives.
FAMILIES: dict[str, Family] = {family.name: family for family in (TRANSACTION, BINDING, PROXY, SUBSCRIPTION, PUBLICATION, DELIVERY)}

#: The family of a table that names none.
DEFAULT_FAMILY = TRANSACTION.name
