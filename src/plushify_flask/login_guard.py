"""Login throttling that slows guessers down without locking the account's owner out.

Three counters of failed logins, shared by every web process (:class:`~.throttle.AttemptLog`):

* per account and address (``pair``): always applies, so nobody guesses quickly from anywhere;
* per account (``user``) and per address (``ip``): apply only from an address the account has
  never signed in from.

So a correct password from an address the account used before still works while strangers'
guesses against the account are slowed down, and a flood of failures from one shared address
(a NAT, or a proxy when ``PLUSHIFY_TRUSTED_PROXIES`` is not set) does not shut out people who
signed in from there before. Throttled attempts are refused before any password is checked, and
look the same whether or not the username exists.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from plushify_core.database import transaction

from .tables import known_addresses
from .throttle import AttemptLog, SlowDown

__all__ = ["LoginGuard"]


class LoginGuard:
    """The login policy over an :class:`AttemptLog` (see the module docstring)."""

    def __init__(
        self,
        log: AttemptLog,
        *,
        per_user: int = 5,
        per_ip: int = 20,
        window: float = 300.0,
        max_delay: float = 60.0,
    ) -> None:
        self.log = log
        self.window = window
        self.user_rule = SlowDown(free=per_user, window=window, cap=max_delay)
        self.ip_rule = SlowDown(free=per_ip, window=window, cap=max_delay)

    def _buckets(self, username: str, address: str) -> tuple[str, str, str]:
        name = username.strip().lower()
        return (
            self.log.bucket("user", name),
            self.log.bucket("ip", address),
            self.log.bucket("pair", f"{name}\x00{address}"),
        )

    def wait(self, username: str, address: str) -> float:
        """Seconds before ``address`` may try a password for ``username`` (0: now)."""
        user, ip, pair = self._buckets(username, address)
        seen = self.log.recent((user, ip, pair), self.window)
        now = self.log.clock.now()
        wait = self.user_rule.wait(seen[pair], now)
        if not self._known(user, ip):
            wait = max(wait, self.user_rule.wait(seen[user], now), self.ip_rule.wait(seen[ip], now))
        return wait

    def failed(self, username: str, address: str) -> None:
        """Count a wrong password (or unknown username) from ``address``."""
        self.log.record(*self._buckets(username, address))

    def succeeded(self, username: str, address: str) -> None:
        """Remember ``address`` as the account's own and forget its own mistypes there.

        The account-wide count stays: a guesser elsewhere is still slowed down.
        """
        user, ip, pair = self._buckets(username, address)
        self.log.clear(pair)
        now = self.log.clock.now()
        with transaction(self.log.database) as conn:
            moved = conn.execute(
                sa.update(known_addresses)
                .where(known_addresses.c.account == user, known_addresses.c.address == ip)
                .values(last_seen=now)
            )
        if moved.rowcount:
            return
        try:
            with transaction(self.log.database) as conn:
                conn.execute(
                    sa.insert(known_addresses).values(account=user, address=ip, last_seen=now)
                )
        except IntegrityError:
            pass  # a parallel login from the same address recorded it first

    def _known(self, user: str, ip: str) -> bool:
        with transaction(self.log.database, write=False) as conn:
            row = conn.execute(
                sa.select(known_addresses.c.account).where(
                    known_addresses.c.account == user, known_addresses.c.address == ip
                )
            ).first()
        return row is not None
