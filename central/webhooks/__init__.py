"""Telling the booking system what happened to its bookings (no-show, check-in, extended, ended early).

A durable outbox: the service that changes a booking also writes a `WebhookOutbox` row in the same
transaction (`outbox.queue_booking_event`), and `sender.WebhookSender` POSTs the rows, signed, until the
booking system answers 2xx. Nothing is lost when central restarts or the booking system is down; a retry
carries the same idempotency key, so the receiver can drop what it has already handled.

- `policy`: when to try again (pure);
- `payload`: what is sent and how it is signed (pure);
- `outbox`: the database side (queue, next batch, mark, prune, health);
- `sender`: the HTTP poster and the background thread `central serve` runs.
"""
