"""The notification controller: Flux events in (event server), to providers out (Alerts), and
webhooks in from git hosts (Receivers) that ask sources to reconcile at once."""
