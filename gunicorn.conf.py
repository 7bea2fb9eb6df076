"""gunicorn's settings that must agree with Django's (the Procfile's web process names this file;
gunicorn also reads it by default when started in the checkout)."""

from dashboard import settings as site

# Who may tell gunicorn a request came over https (X-Forwarded-Proto and its kin). gunicorn's own
# default trusts 127.0.0.1, so with TRUST_X_FORWARDED_PROTO=0 any local client (or a proxy that
# passes the client's header through) could have a plain http request taken for https. Now
# gunicorn believes the header exactly when Django does, and from TRUSTED_PROXIES when they are set.
if site.TRUST_X_FORWARDED_PROTO:
    forwarded_allow_ips = ",".join(site.TRUSTED_PROXIES) or "127.0.0.1,::1"
else:
    forwarded_allow_ips = ""
    secure_scheme_headers = {}  # also for a unix socket, which gunicorn trusts whatever the list

# gunicorn 25+ opens a control socket at one path per user ($HOME/.gunicorn/gunicorn.ctl): two
# sites (or a site and its test suite) on one host would fight over it. Nothing here uses it.
control_socket_disable = True
