"""Response: owners, incidents, alert routing, channels and a persistent outbox.

- ``config``     the ``flightlog.toml`` sections this layer reads, validated at start
- ``owners``     who owns a step or a workflow (code owners, then CODEOWNERS-style rules)
- ``incidents``  failures grouped by fingerprint; triggered -> acknowledged -> resolved
- ``routing``    the Alertmanager-style tree: grouping, inhibition, silences
- ``channels``   webhook, Slack, PagerDuty Events v2, SMTP email
- ``outbox``     persistent, retried, at-least-once delivery with idempotency keys
- ``engine``     ties them together; runs as a run-end hook, in ``flightlog watch`` and in
                 the server
- ``clock``      the injectable clock every timer reads

Importing this package loads nothing heavy; the pieces load on use.
"""
