"""Response: owners, incidents, alert routing, channels and a persistent outbox.

- ``config``       the ``flightlog.toml`` sections this layer reads, validated at start
- ``owners``       who owns a step or a workflow (code owners, then CODEOWNERS-style rules)
- ``incidents``    failures grouped by fingerprint; triggered -> acknowledged -> resolved
- ``recording``    ended runs -> incidents and their alerts
- ``alerts``       an incident's alerts (one per role), their labels and their message
- ``routing``      the Alertmanager-style tree: grouping, inhibition, silences
- ``notify``       alerts -> routing -> groups -> the outbox
- ``escalation``   unacknowledged pages up the team's escalation policy
- ``transitions``  acknowledge / resolve, and the channels that follow them
- ``channels``     the channel plug-in registry (entry points ``flightlog.channels``):
                   webhook, Slack, PagerDuty Events v2 (``http_channels``), SMTP email
                   (``email_channel``)
- ``outbox``       persistent, retried, at-least-once delivery with idempotency keys
- ``engine``       the facade over these; runs as a run-end stage, in ``flightlog watch``
                   and in the server
- ``clock``        the injectable clock every timer reads

Importing this package loads nothing heavy; the pieces load on use.
"""
