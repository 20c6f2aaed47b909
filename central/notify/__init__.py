"""Alarms that need a person reach the caretaker on call by e-mail and webhook, once, and go further up if
nobody acknowledges them in time.

- `rules`: which alarm kinds need a person, folding repeats, when to escalate, when a message is no longer
  news, when an agent counts as offline (pure);
- `message`: the e-mail and webhook texts, bokmål with English below, from the catalogue (pure);
- `watch`: the agent watch that raises and clears agent_offline alarms;
- `outbox`: the database side (notice alarms, escalate, the durable outbox, health);
- `senders`: SMTP (smtplib) and the webhook poster (httpx, HMAC-signed like the booking webhooks);
- `job`: the `Notifier` round `central serve` runs every ~10 s.
"""
