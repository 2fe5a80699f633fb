"""Sign-up throttling: per client address and site-wide, shared by every web process.

Every sign-up attempt counts (accepted or refused: a taken name, a bad invite), so the form can
neither farm accounts quickly nor be used to test many usernames for existence. The address
limit slows one client; the site-wide limit caps what many addresses together can do.
"""

from __future__ import annotations

from .throttle import AttemptLog, SlowDown

__all__ = ["SignupGuard"]


class SignupGuard:
    """``per_ip`` attempts per address and ``total`` site-wide per ``window`` seconds."""

    def __init__(self, log: AttemptLog, *, per_ip: int, total: int, window: float) -> None:
        self.log = log
        self.window = window
        # Past the free attempts: a minute, then doubling, up to the whole window.
        self.ip_rule = SlowDown(free=per_ip, window=window, base=60.0, cap=window)
        self.total_rule = SlowDown(free=total, window=window, base=10.0, cap=window)
        self._site = log.bucket("signup-site", "*")

    def wait(self, address: str) -> float:
        """Seconds before ``address`` may try to sign up (0: now)."""
        ip = self.log.bucket("signup-ip", address)
        seen = self.log.recent((ip, self._site), self.window)
        now = self.log.clock.now()
        return max(self.ip_rule.wait(seen[ip], now), self.total_rule.wait(seen[self._site], now))

    def attempted(self, address: str) -> None:
        """Count one sign-up attempt from ``address``."""
        self.log.record(self.log.bucket("signup-ip", address), self._site)
