"""petguard: instance HA for OpenStack pets (fence first, then evacuate, exactly once).

Code map (read this first). Layers, top to bottom; a module imports only from layers below its own
(the ``layers`` contract in ``.importlinter`` checks it):

==========================  ==========================================================================
``cmd/``                    entry points: ``petguard-daemon``, ``petguard-manage`` (composition only)
``daemon/``                 the daemon's composition root (``service``), the API's backend
                            (``api_backend``), Prometheus ``metrics``, the process ``lifecycle``,
                            ``check`` (``petguard-manage config check``, with the daemon's own readers)
``ha/`` ``api/``            leader ``election`` and the acting path's ``guards`` (only the leader
``webhooks/``               changes Nova or fences); the HTTP API (falcon); outgoing webhooks
``conf/``                   oslo.config options (``opts``), the policies built from them, the names
                            in config files nobody registered (``unknown``: typos)
``reconcile`` ``lanes``     the loop (one tick: read Nova, ``decide``, act) and the host lanes (one
                            thread per failed host: fence, then plan and evacuate)
``store/`` ``nova/``        the two adapters: the SQL journal (``store.sql.SqlStore``) and the
                            openstacksdk adapter (``nova.compute.NovaCompute``, ``nova.placement``)
``guests/``                 instance health: which guests need a restart (``policy``) and doing it
``evacuate/`` ``fencing/``  procedures and their pure parts: planning (``plan``, ``hints``), pet
                            readiness between tiers (``ready``, ``gate``, ``probe``), the runner
                            (``run``), its outage judgement (``outage``) and the moves' and loans'
                            state ``transitions``, reserved hosts, capacity;
                            the fencing contract (``base``), procedure, child-process runner, drivers
                            (``ipmi``, ``redfish``, ``fenceagent``), inventory, ``preflight``,
                            ``powerwatch`` (read-only power readings for detection)
``decide``                  pure: one tick's decisions from the journal's state and the readings
``journal`` ``compute``     the two seams (Protocols): what petguard records, what it asks of Nova
``detect`` ``sight``        pure: host health from signals, the brake; whether petguard can see
``hosts``                   pure: the host lifecycle table (docs/lifecycle.md is generated from it)
``cloud``                   pure: Nova's vocabulary as petguard's values (services, servers, plans)
``tls``                     foundation: the API's TLS (server: cert and key; clients: a CA file)
``clock`` ``duty``          foundation: time, background duties, ``secrets`` (masking, the one
``secrets`` ``sdnotify``    HMAC, secret files), systemd notification, what every program does at
``startup`` ``terminal``    start (its ``--version``, its exit statuses: 75 transient, 78 config),
                            what the two command-line programs share (cliff columns, confirmation)
``errors``                  foundation: the error hierarchy (Temporary vs Permanent)
==========================  ==========================================================================

Beside the layers: ``agent/`` is the compute-node program (libvirt events, signed reports; it shares
only foundations and ``agent.events`` with the daemon), ``cli/`` the operator's HTTP client (it shares
only foundations and the API's shapes, ``api.wire`` and ``api.columns``, with ``petguard-manage``).
Procedures see only the seams, never an adapter; pure modules do no I/O and take ``now`` and their
policy as arguments.
"""

__version__ = "0.1.0"
