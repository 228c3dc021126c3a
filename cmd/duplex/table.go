package main

import (
	"time"
)

// values holds every setting as read, before it is turned into the
// packages' Config structs (see options.finish).
type values struct {
	Addr, AdminAddr, StompTCPAddr, MQTTTCPAddr, DebugAddr string
	Data, DB, Sync, LogLevel, LogFormat                   string
	ShutdownGrace, SysInterval                            time.Duration
	AllowAnonymous                                        optBool
	PasswordFile, ACLFile                                 string
	Admins                                                []string

	Auth struct {
		BanAfter                                          int
		BanWindow, BanTime, FailureDelay, FailureDelayMax time.Duration
	}
	JWT struct {
		SecretFile, PublicKeyFile, JWKSFile              string
		Audience, Issuer                                 string
		UsernameClaim, GroupsClaim, AdminClaim, ACLClaim string
		Leeway                                           time.Duration
	}
	TLS struct {
		CertFile, KeyFile, ClientCAFile    string
		ClientCerts, CertUsername          string
		WSSAddr, MQTTTLSAddr, StompTLSAddr string
	}
	Web struct {
		AllowedOrigins, AllowedHosts, TrustedProxies []string
		MaxMessageSize                               int64
		ParkIdleAfter                                time.Duration
	}
	Limits struct {
		MaxConnections, MaxConnectionsPerIP          int
		ConnectRatePerIP                             float64
		ConnectBurstPerIP                            int
		HTTPIdleTimeout, HTTPReadHeaderTimeout       time.Duration
		ConnectTimeout                               time.Duration
		MaxFrameSize, MaxFrameSizeBeforeLogin        int
		MaxSubscriptionsPerSession, MaxSubscriptions int
		MaxRetained                                  int
		MaxRetainedBytes                             int64
		MaxRetainedPerUser                           int
		MaxRetainedBytesPerUser                      int64
		MaxSessionsPerUser                           int
		SessionExpiry, MaxSessionExpiry              time.Duration
		MaxSessionQueue                              int
		MaxSessionQueueBytes                         int64
		MaxQueueDepth, MaxQueueBytes                 int
		MaxRedeliveries                              int
		MaxOutboundHeaders                           int
		PublishRate                                  float64
		PublishBurst                                 int
		PublishBytesRate                             int64
		MaxPendingMsgs, MaxPendingBytes              int
		SlowConsumer                                 string
	}
	Stomp struct {
		HeartbeatMin   time.Duration
		HeartbeatGrace float64
		HeartbeatSlack time.Duration
		TopicSeparator string
		// Dead-lettering: DeadLetterPrefix names a queue's dead-letter
		// queue, DeadLetterTopic the topic of its copy for MQTT.
		DeadLetterPrefix, DeadLetterTopic string
	}
	MQTT struct {
		PerSubscriptionCopies bool
	}
	Cluster clusterValues // cluster.go
}

// settingsTable is every configuration key, in the order of the example
// file and of duplex -h. Flags are the key with dashes, section keys
// prefixed with the section ("-jwt-issuer"), except the flags that existed
// before the config file (-max-frame-size, -heartbeat-min, …), which keep
// their names. The file-only keys ([[acl]], [groups]) are in loadFile.
func settingsTable(v *values) []*setting {
	l := &v.Limits
	return append([]*setting{
		// Listeners and storage.
		{key: "addr", flag: "addr", def: "127.0.0.1:8080", kind: kindAddr, target: &v.Addr,
			help: "plain HTTP/WebSocket listen address (host:port; port 0 picks one; empty: off when tls.wss_addr is set)"},
		{key: "admin_addr", flag: "admin-addr", def: "", kind: kindAddr, target: &v.AdminAddr,
			help: "serve the management API (/api/*) on its own listener instead of addr (empty: on addr)"},
		{key: "stomp_tcp_addr", flag: "stomp-tcp-addr", def: "127.0.0.1:61613", kind: kindAddr, target: &v.StompTCPAddr,
			help: "STOMP over plain TCP (empty: off)"},
		{key: "mqtt_tcp_addr", flag: "mqtt-tcp-addr", def: "127.0.0.1:1883", kind: kindAddr, target: &v.MQTTTCPAddr,
			help: "MQTT over plain TCP (empty: off)"},
		{key: "data", flag: "data", def: "data", kind: kindPath, target: &v.Data,
			help: "data folder (created if missing)"},
		{key: "db", flag: "db", def: "", kind: kindPath, target: &v.DB,
			help: "database file (empty: <data>/duplex.db)"},
		{key: "sync", flag: "sync", def: "always", target: &v.Sync,
			help: "store sync policy: always (fsync before every acknowledgement), or an interval such as 200ms (a power cut may lose that much)"},
		{key: "log_level", flag: "log-level", def: "info", kind: kindEnum, enum: []string{"debug", "info", "warn", "error"}, target: &v.LogLevel,
			help: "log level: debug, info, warn, error"},
		{key: "log_format", flag: "log-format", def: "text", kind: kindEnum, enum: []string{"text", "json"}, target: &v.LogFormat,
			help: "log format on standard error: text (key=value) or json (one JSON object a line)"},
		{key: "shutdown_grace", flag: "shutdown-grace", def: "10s", target: &v.ShutdownGrace,
			help: "on SIGTERM or SIGINT, how long to tell clients, flush the store and exit before giving up on stragglers"},
		{key: "sys_interval", flag: "sys-interval", def: "10s", target: &v.SysInterval,
			help: "how often the $SYS/broker/... topics are published (0s: off)"},
		{key: "debug_addr", flag: "debug-addr", def: "", kind: kindAddr, target: &v.DebugAddr,
			help: "serve Go's pprof profiles on this address (empty: off; keep it on loopback)"},

		// Who may connect.
		{key: "allow_anonymous", flag: "allow-anonymous", def: "", target: &v.AllowAnonymous,
			help: "let clients connect without credentials (unset: true only when no password file, JWT or client-certificate authentication is configured)"},
		{key: "password_file", flag: "password-file", def: "", kind: kindPath, target: &v.PasswordFile,
			help: "user:bcrypt-hash lines, managed with duplex passwd; reloaded on SIGHUP"},
		{key: "acl_file", flag: "acl-file", def: "", kind: kindPath, target: &v.ACLFile,
			help: "ACL rules in Mosquitto's acl_file syntax, added to the [[acl]] rules; reloaded on SIGHUP"},
		{key: "admins", flag: "admins", def: "", target: &v.Admins,
			help: "user names with the admin role (management API, $SYS); comma-separated as a flag"},

		{key: "auth.ban_after", flag: "auth-ban-after", def: "10", target: &v.Auth.BanAfter,
			help: "authentication failures from one source address within ban_window before it is banned (0: never)"},
		{key: "auth.ban_window", flag: "auth-ban-window", def: "1m", target: &v.Auth.BanWindow,
			help: "window in which ban_after failures are counted"},
		{key: "auth.ban_time", flag: "auth-ban-time", def: "5m", target: &v.Auth.BanTime,
			help: "how long a banned source address is refused"},
		{key: "auth.failure_delay", flag: "auth-failure-delay", def: "250ms", target: &v.Auth.FailureDelay,
			help: "delay before answering a failed login; doubles with each further failure from the source"},
		{key: "auth.failure_delay_max", flag: "auth-failure-delay-max", def: "5s", target: &v.Auth.FailureDelayMax,
			help: "the largest failure delay"},

		{key: "jwt.secret_file", flag: "jwt-secret-file", def: "", kind: kindPath, target: &v.JWT.SecretFile,
			help: "HS256 secret for JWT passwords; reloaded on SIGHUP"},
		{key: "jwt.public_key_file", flag: "jwt-public-key-file", def: "", kind: kindPath, target: &v.JWT.PublicKeyFile,
			help: "PEM public key for RS256/ES256 JWTs; reloaded on SIGHUP"},
		{key: "jwt.jwks_file", flag: "jwt-jwks-file", def: "", kind: kindPath, target: &v.JWT.JWKSFile,
			help: "JSON Web Key Set for JWTs (by kid); reloaded on SIGHUP"},
		{key: "jwt.audience", flag: "jwt-audience", def: "", target: &v.JWT.Audience,
			help: "required aud claim (empty: not checked)"},
		{key: "jwt.issuer", flag: "jwt-issuer", def: "", target: &v.JWT.Issuer,
			help: "required iss claim (empty: not checked)"},
		{key: "jwt.username_claim", flag: "jwt-username-claim", def: "sub", target: &v.JWT.UsernameClaim,
			help: "claim holding the user name"},
		{key: "jwt.groups_claim", flag: "jwt-groups-claim", def: "groups", target: &v.JWT.GroupsClaim,
			help: "claim holding the user's groups (array of strings)"},
		{key: "jwt.admin_claim", flag: "jwt-admin-claim", def: "admin", target: &v.JWT.AdminClaim,
			help: "boolean claim granting the admin role"},
		{key: "jwt.acl_claim", flag: "jwt-acl-claim", def: "acl", target: &v.JWT.ACLClaim,
			help: "claim carrying ACL rules checked before the configured ones"},
		{key: "jwt.leeway", flag: "jwt-leeway", def: "30s", target: &v.JWT.Leeway,
			help: "clock skew allowed on exp and nbf"},

		{key: "tls.cert_file", flag: "tls-cert-file", def: "", kind: kindPath, target: &v.TLS.CertFile,
			help: "PEM certificate chain for the TLS listeners; reloaded on SIGHUP"},
		{key: "tls.key_file", flag: "tls-key-file", def: "", kind: kindPath, target: &v.TLS.KeyFile,
			help: "PEM private key of cert_file; reloaded on SIGHUP"},
		{key: "tls.client_ca_file", flag: "tls-client-ca-file", def: "", kind: kindPath, target: &v.TLS.ClientCAFile,
			help: "PEM CA certificates that sign client certificates"},
		{key: "tls.client_certs", flag: "tls-client-certs", def: "off", kind: kindEnum, enum: []string{"off", "optional", "require"}, target: &v.TLS.ClientCerts,
			help: "client certificates on TLS listeners: off, optional (a verified one logs the client in), require"},
		{key: "tls.cert_username", flag: "tls-cert-username", def: "cn", kind: kindEnum, enum: []string{"cn", "san"}, target: &v.TLS.CertUsername,
			help: "which certificate name becomes the user name: cn (Subject Common Name) or san (first SAN)"},
		{key: "tls.wss_addr", flag: "tls-wss-addr", def: "", kind: kindAddr, target: &v.TLS.WSSAddr,
			help: "HTTPS/WSS listen address (empty: off)"},
		{key: "tls.mqtt_tls_addr", flag: "tls-mqtt-tls-addr", def: "", kind: kindAddr, target: &v.TLS.MQTTTLSAddr,
			help: "MQTT over TLS listen address, conventionally :8883 (empty: off)"},
		{key: "tls.stomp_tls_addr", flag: "tls-stomp-tls-addr", def: "", kind: kindAddr, target: &v.TLS.StompTLSAddr,
			help: "STOMP over TLS listen address, conventionally :61614 (empty: off)"},

		{key: "web.allowed_origins", flag: "allowed-origins", def: "", target: &v.Web.AllowedOrigins,
			help: "browser Origins allowed besides same-origin (\"*\": any, must be explicit); comma-separated as a flag"},
		{key: "web.allowed_hosts", flag: "web-allowed-hosts", def: "", target: &v.Web.AllowedHosts,
			help: "Host header values accepted (empty: loopback names only when every HTTP listener is on loopback, else any)"},
		{key: "web.trusted_proxies", flag: "web-trusted-proxies", def: "", target: &v.Web.TrustedProxies,
			help: "IPs or CIDRs whose X-Forwarded-For / Forwarded headers are believed"},
		{key: "web.max_message_size", flag: "web-max-message-size", def: "0", kind: kindSize, target: &v.Web.MaxMessageSize,
			help: "WebSocket read limit in bytes (0: limits.max_frame_size + 128 KiB, 64 KiB above the largest STOMP frame and MQTT packet, so that both answer an oversize frame themselves)"},
		{key: "web.park_idle_after", flag: "web-park-idle-after", def: "100ms", target: &v.Web.ParkIdleAfter,
			help: "a plain WebSocket connection idle this long gives up its read goroutine and read buffers until its next input (Linux; about 6 KiB less per idle connection); 0s: never"},

		{key: "limits.max_connections", flag: "limits-max-connections", def: "0", target: &l.MaxConnections,
			help: "open client connections in total (0: 95% of the open-file limit)"},
		{key: "limits.max_connections_per_ip", flag: "limits-max-connections-per-ip", def: "1000", target: &l.MaxConnectionsPerIP,
			help: "open connections per source address (0: no limit)"},
		{key: "limits.connect_rate_per_ip", flag: "limits-connect-rate-per-ip", def: "100", target: &l.ConnectRatePerIP,
			help: "new connections per second per source address (0: no limit)"},
		{key: "limits.connect_burst_per_ip", flag: "limits-connect-burst-per-ip", def: "200", target: &l.ConnectBurstPerIP,
			help: "burst of new connections per source address above the rate"},
		{key: "limits.http_idle_timeout", flag: "limits-http-idle-timeout", def: "60s", target: &l.HTTPIdleTimeout,
			help: "an idle HTTP keep-alive connection is closed after this"},
		{key: "limits.http_read_header_timeout", flag: "limits-http-read-header-timeout", def: "10s", target: &l.HTTPReadHeaderTimeout,
			help: "time to send the HTTP request headers"},
		{key: "limits.connect_timeout", flag: "limits-connect-timeout", def: "10s", target: &l.ConnectTimeout,
			help: "time from connection to the STOMP CONNECT or MQTT CONNECT"},
		{key: "limits.max_frame_size", flag: "max-frame-size", def: "4MiB", kind: kindSize, min: 1, target: &l.MaxFrameSize,
			help: "largest STOMP frame body after login; the largest MQTT packet is this plus 64 KiB, the WebSocket read limit this plus 128 KiB"},
		{key: "limits.max_frame_size_before_login", flag: "limits-max-frame-size-before-login", def: "4096", kind: kindSize, min: 1, target: &l.MaxFrameSizeBeforeLogin,
			help: "largest frame or packet before the client has logged in"},
		{key: "limits.max_subscriptions_per_session", flag: "limits-max-subscriptions-per-session", def: "10000", min: 1, target: &l.MaxSubscriptionsPerSession,
			help: "subscriptions one session may hold"},
		{key: "limits.max_subscriptions", flag: "limits-max-subscriptions", def: "1000000", target: &l.MaxSubscriptions,
			help: "subscriptions in the whole broker (0: no limit)"},
		{key: "limits.max_retained", flag: "limits-max-retained", def: "100000", target: &l.MaxRetained,
			help: "topics holding a retained message (0: no limit)"},
		{key: "limits.max_retained_bytes", flag: "limits-max-retained-bytes", def: "256MiB", kind: kindSize, target: &l.MaxRetainedBytes,
			help: "payload bytes of all retained messages (0: no limit)"},
		{key: "limits.max_retained_per_user", flag: "limits-max-retained-per-user", def: "1000", target: &l.MaxRetainedPerUser,
			help: "retained messages one user owns (anonymous clients: per source address, or per client id in the zero config; 0: no limit)"},
		{key: "limits.max_retained_bytes_per_user", flag: "limits-max-retained-bytes-per-user", def: "16MiB", kind: kindSize, target: &l.MaxRetainedBytesPerUser,
			help: "retained payload bytes one user owns (anonymous clients: as max_retained_per_user; 0: no limit)"},
		{key: "limits.max_sessions_per_user", flag: "limits-max-sessions-per-user", def: "1000", target: &l.MaxSessionsPerUser,
			help: "persistent sessions and STOMP durable subscriptions one user owns (anonymous clients: per source address; 0: no limit)"},
		{key: "limits.session_expiry", flag: "limits-session-expiry", def: "2h", target: &l.SessionExpiry,
			help: "how long an MQTT 3.x clean-session-0 session lives after its connection ends"},
		{key: "limits.max_session_expiry", flag: "limits-max-session-expiry", def: "24h", target: &l.MaxSessionExpiry,
			help: "cap on an MQTT 5 Session Expiry Interval (0xFFFFFFFF gets the cap) and on session_expiry (0: no cap)"},
		{key: "limits.max_session_queue", flag: "max-session-queue", def: "1000", min: 1, target: &l.MaxSessionQueue,
			help: "QoS 1/2 messages stored for one persistent MQTT session"},
		{key: "limits.max_session_queue_bytes", flag: "max-session-queue-bytes", def: "64MiB", kind: kindSize, target: &l.MaxSessionQueueBytes,
			help: "payload bytes stored for one persistent MQTT session (0: no limit)"},
		{key: "limits.max_queue_depth", flag: "max-queue-depth", def: "100000", min: 1, target: &l.MaxQueueDepth,
			help: "messages waiting in one /queue before SEND is refused"},
		{key: "limits.max_queue_bytes", flag: "max-queue-bytes", def: "256MiB", kind: kindSize, min: 1, target: &l.MaxQueueBytes,
			help: "payload bytes one /queue or durable subscription holds"},
		{key: "limits.max_redeliveries", flag: "limits-max-redeliveries", def: "20", target: &l.MaxRedeliveries,
			help: "times a /queue or durable subscription message may come back unacknowledged (NACK, or its consumer left) before it goes to its dead-letter queue (0: no limit)"},
		{key: "limits.max_outbound_headers", flag: "limits-max-outbound-headers", def: "64", min: 1, target: &l.MaxOutboundHeaders,
			help: "user headers / properties carried when a message crosses from one protocol to the other (extra ones dropped and counted)"},
		{key: "limits.publish_rate", flag: "limits-publish-rate", def: "0", target: &l.PublishRate,
			help: "messages per second one connection may publish, enforced by pausing its reads (0: no limit)"},
		{key: "limits.publish_burst", flag: "limits-publish-burst", def: "0", target: &l.PublishBurst,
			help: "burst above publish_rate (0: the rate)"},
		{key: "limits.publish_bytes_rate", flag: "limits-publish-bytes-rate", def: "0", kind: kindSize, target: &l.PublishBytesRate,
			help: "payload bytes per second one connection may publish (0: no limit)"},
		{key: "limits.max_pending_msgs", flag: "max-pending-msgs", def: "1000", min: 1, target: &l.MaxPendingMsgs,
			help: "deliveries queued for one connection before the slow-consumer policy"},
		{key: "limits.max_pending_bytes", flag: "max-pending-bytes", def: "4MiB", kind: kindSize, min: 1, target: &l.MaxPendingBytes,
			help: "bytes queued for one connection before the slow-consumer policy"},
		{key: "limits.slow_consumer", flag: "slow-consumer", def: "disconnect", kind: kindEnum, enum: []string{"disconnect", "drop"}, target: &l.SlowConsumer,
			help: "slow-consumer policy: disconnect, or drop (new QoS 0 deliveries)"},

		{key: "stomp.heartbeat_min", flag: "heartbeat-min", def: "1s", negOK: true, target: &v.Stomp.HeartbeatMin,
			help: "smallest STOMP heart-beat interval offered and accepted (negative: heart-beats off)"},
		{key: "stomp.heartbeat_grace", flag: "heartbeat-grace", def: "2", target: &v.Stomp.HeartbeatGrace,
			help: "a client heart-beat may be this many intervals late..."},
		{key: "stomp.heartbeat_slack", flag: "heartbeat-slack", def: "60s", negOK: true, target: &v.Stomp.HeartbeatSlack,
			help: "...plus this much (browsers throttle background tabs; 0s: none)"},
		{key: "stomp.topic_separator", flag: "topic-separator", def: "/", kind: kindEnum, enum: []string{"/", "."}, target: &v.Stomp.TopicSeparator,
			help: "STOMP topic level separator: / (as MQTT) or . (RabbitMQ style)"},
		{key: "stomp.dead_letter_prefix", flag: "stomp-dead-letter-prefix", def: "DLQ.", target: &v.Stomp.DeadLetterPrefix,
			help: "a queue message rejected (NACK requeue:false) or past limits.max_redeliveries moves to the queue <prefix><queue> (empty: it is dropped, counted)"},
		{key: "stomp.dead_letter_topic", flag: "stomp-dead-letter-topic", def: "$DLQ/", target: &v.Stomp.DeadLetterTopic,
			help: "...and a copy is published on the topic <this><queue>, for MQTT clients (empty: no copy)"},

		{key: "mqtt.per_subscription_copies", flag: "mqtt-per-subscription-copies", def: "false", target: &v.MQTT.PerSubscriptionCopies,
			help: "true: a message matching several subscriptions of one MQTT client goes once per subscription (Mosquitto); false: once, at the highest QoS, with every subscription identifier"},
	}, clusterSettings(&v.Cluster)...)
}

// sections are the TOML tables of the settings, in order.
var sections = []string{"auth", "jwt", "tls", "web", "limits", "stomp", "mqtt", "cluster"}
