"""What a text conversation does besides being a contact: take the caller's messages
and send replies. The commands live here; their events (``MessageReceived``,
``MessageSent``) stay on ``Contact``, whose stored topics name them. No I/O here.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from services.contact.domain.caller import Caller
from services.contact.domain.codes import Channel
from services.contact.domain.values import record_time
from shared.kernel import RuleBroken, require_sealed


class TextThreadCommands:
    """Mixed into ``Contact``: the commands of a text conversation."""

    if TYPE_CHECKING:
        channel: str
        caller_id: uuid.UUID | None
        messages: list[dict[str, Any]]

        def _message_received(self, *, body: str | None, at: datetime) -> None: ...

        def _message_sent(self, *, body: str | None, at: datetime,
                          provider_ref: str) -> None: ...

    def receive_message(self, *, body: str, at: datetime, now: datetime | None = None) -> None:
        if self.channel != Channel.TEXT:
            raise RuleBroken("only a text conversation takes messages")
        self._message_received(body=require_sealed("body", body),
                               at=record_time("at", at, now or datetime.now(UTC)))

    def check_can_send_message(self, caller: Caller | None) -> None:
        """Texts go only to a known caller who consented to them and was not erased. The
        application asks this before the provider sends anything; ``send_message`` asks
        it again."""
        if self.channel != Channel.TEXT:
            raise RuleBroken("only a text conversation can be replied to by text")
        if self.caller_id is None or caller is None or caller.id != self.caller_id:
            raise RuleBroken("this text conversation has no known caller to reply to")
        if not caller.may_receive_texts:
            raise RuleBroken("the caller has not consented to receiving texts")

    def send_message(self, *, body: str, at: datetime, provider_ref: str,
                     caller: Caller | None, now: datetime | None = None) -> None:
        self.check_can_send_message(caller)
        self._message_sent(body=require_sealed("body", body),
                           at=record_time("at", at, now or datetime.now(UTC)),
                           provider_ref=provider_ref)
