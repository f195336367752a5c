"""The operator's e-mail relay policy at send time: the recipient's domain must be allowed
(services.common.email_domains: the registry checked it when the endpoint was written, this catches a
policy narrowed since), and each account may be sent at most so many e-mails per period
(HOOKS_SENDER_EMAIL_RATE_LIMIT, by each sender replica).

The rate limit is a token bucket per account holding a whole period's worth (a burst of up to the
limit, then the limit's pace). An e-mail over it is not attempted and not lost: it reserves the next
free slot of its account's bucket (the bucket goes into debt, so e-mails waiting behind one another
get successive slots rather than all waking at once) and is put back PENDING until then, without
counting as an attempt; when it comes back at its slot, it goes.
"""

from __future__ import annotations

import time

from services.common.email_domains import RecipientDomains
from services.common.lru import LruCache
from services.sender.lanes import TokenBucket

#: Accounts whose buckets are kept (the least recently used dropped beyond: it starts full again).
ACCOUNTS = 10_000
#: Reserved slots kept (delivery id -> when): at most one per e-mail waiting for its turn.
RESERVATIONS = 100_000
#: An e-mail coming back this much before its slot (clocks, the poll) counts as on time.
EARLY_SECONDS = 0.1


class EmailPolicy:
    def __init__(self, domains: RecipientDomains, rate_limit: tuple[int, float] | None):
        """`rate_limit`: (e-mails, per seconds) for each account, or None for none."""
        self.domains = domains
        self.rate_limit = rate_limit
        self._buckets: LruCache[str, TokenBucket] = LruCache(ACCOUNTS)
        self._slots: LruCache[str, float] = LruCache(RESERVATIONS)

    def recipient_allowed(self, address: str) -> bool:
        return self.domains.allows(address)

    def wait_seconds(self, account_id: str, delivery_id: str) -> float:
        """0 when the account may be sent this e-mail now (its share of the limit is taken), else the
        seconds until the slot reserved for it."""
        if self.rate_limit is None:
            return 0.0
        now = time.monotonic()
        slot = self._slots.get(delivery_id)
        if slot is not None:
            if now >= slot - EARLY_SECONDS:
                self._slots.pop(delivery_id)
                return 0.0
            return slot - now
        bucket = self._buckets.get(account_id)
        if bucket is None:
            count, seconds = self.rate_limit
            bucket = TokenBucket(count, seconds, capacity=float(count))
            self._buckets.put(account_id, bucket)
        if bucket.available(now):
            bucket.take(now)
            return 0.0
        slot = bucket.next_token_at(now)
        bucket.take(now)  # the slot is this e-mail's: the next one waits behind it
        self._slots.put(delivery_id, slot)
        return slot - now
