// Deriving the configuration: the listeners, the exposure checks, and finish,
// which checks the values together and turns them into the packages' Configs.

package main

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/store"
	"github.com/duplexmq/duplex/web"
)

// listener is one configured listen address.
type listener struct {
	key  string // config key, e.g. "tls.wss_addr"
	addr string
	tls  bool
	http bool // serves HTTP (WebSocket, API)
}

// listeners returns the configured listeners, off ones included.
func (o *options) listeners() []listener {
	v := &o.v
	return []listener{
		{key: "addr", addr: v.Addr, http: true},
		{key: "admin_addr", addr: v.AdminAddr, http: true},
		{key: "stomp_tcp_addr", addr: v.StompTCPAddr},
		{key: "mqtt_tcp_addr", addr: v.MQTTTCPAddr},
		{key: "tls.wss_addr", addr: v.TLS.WSSAddr, tls: true, http: true},
		{key: "tls.mqtt_tls_addr", addr: v.TLS.MQTTTLSAddr, tls: true},
		{key: "tls.stomp_tls_addr", addr: v.TLS.StompTLSAddr, tls: true},
	}
}

// authConfigured says whether any authentication is configured: a password
// file, a JWT key, or client certificates.
func (o *options) authConfigured() bool {
	v := &o.v
	return v.PasswordFile != "" || v.JWT.SecretFile != "" || v.JWT.PublicKeyFile != "" ||
		v.JWT.JWKSFile != "" || v.TLS.ClientCerts != "off"
}

// anonymousAllowed is allow_anonymous, or when unset whether no
// authentication is configured (Mosquitto 2's default, loopback only).
func (o *options) anonymousAllowed() bool {
	if o.v.AllowAnonymous.set {
		return o.v.AllowAnonymous.v
	}
	return !o.authConfigured()
}

// checkExposure refuses to serve anonymous clients from the network by
// accident: a listener without TLS on a non-loopback address, while
// anonymous clients are allowed, needs allow_anonymous = true written out.
func (o *options) checkExposure() error {
	if !o.anonymousAllowed() || (o.v.AllowAnonymous.set && o.v.AllowAnonymous.v) {
		return nil
	}
	for _, l := range o.listeners() {
		if l.addr == "" || l.tls || isLoopback(l.addr) {
			continue
		}
		return fmt.Errorf("refusing to start: %s %q is not a loopback address, and with no authentication configured "+
			"anyone who can reach it could connect, read and publish everything.\n"+
			"Require a login: set password_file (see duplex passwd), or [jwt] secret_file / public_key_file / jwks_file, "+
			"or [tls] client_certs = \"require\" (-password-file, -jwt-secret-file, -tls-client-certs).\n"+
			"Or, to accept anonymous clients from the network on purpose, set allow_anonymous = true (-allow-anonymous)",
			l.key, l.addr)
	}
	return nil
}

// adminOpen says whether the management API is served without a login:
// only in the zero-config default, no authentication configured and every
// HTTP listener on loopback.
func (o *options) adminOpen() bool {
	return !o.authConfigured() && o.httpOnLoopback()
}

// allOnLoopback says whether every listener is on loopback.
func (o *options) allOnLoopback() bool {
	for _, l := range o.listeners() {
		if l.addr != "" && !isLoopback(l.addr) {
			return false
		}
	}
	return true
}

// httpOnLoopback says whether every HTTP listener is on loopback.
func (o *options) httpOnLoopback() bool {
	for _, l := range o.listeners() {
		if l.http && l.addr != "" && !isLoopback(l.addr) {
			return false
		}
	}
	return true
}

// finish checks the values together and derives the packages' configs.
func (o *options) finish() error {
	v := &o.v
	var err error
	if o.sync, err = store.ParseSyncPolicy(v.Sync); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	if err := o.logLevel.UnmarshalText([]byte(v.LogLevel)); err != nil {
		return fmt.Errorf("log_level: %w", err)
	}

	// Listeners.
	if v.Addr == "" && v.TLS.WSSAddr == "" {
		return errors.New("addr and tls.wss_addr are both empty: set at least one")
	}
	seen := map[string]string{}
	for _, l := range o.listeners() {
		if l.addr == "" {
			continue
		}
		if _, port, _ := net.SplitHostPort(l.addr); port == "0" {
			continue // port 0 picks a free port each time
		}
		if other, ok := seen[l.addr]; ok {
			return fmt.Errorf("%s and %s are both %q", other, l.key, l.addr)
		}
		seen[l.addr] = l.key
	}
	var tlsUsers []string
	for _, l := range o.listeners() {
		if l.tls && l.addr != "" {
			tlsUsers = append(tlsUsers, l.key)
		}
	}
	if v.TLS.ClientCerts != "off" {
		tlsUsers = append(tlsUsers, "tls.client_certs")
		if v.TLS.ClientCAFile == "" {
			return fmt.Errorf("tls.client_certs = %q needs tls.client_ca_file (the CA that signs client certificates)", v.TLS.ClientCerts)
		}
		if len(tlsUsers) == 1 {
			return fmt.Errorf("tls.client_certs = %q needs a TLS listener: set tls.wss_addr, tls.mqtt_tls_addr or tls.stomp_tls_addr", v.TLS.ClientCerts)
		}
	}
	if (v.TLS.CertFile == "") != (v.TLS.KeyFile == "") {
		return errors.New("tls.cert_file and tls.key_file go together: set both or neither")
	}
	if len(tlsUsers) > 0 && v.TLS.CertFile == "" {
		return fmt.Errorf("%s needs tls.cert_file and tls.key_file", tlsUsers[0])
	}
	for key, d := range map[string]time.Duration{
		"limits.http_idle_timeout":        v.Limits.HTTPIdleTimeout,
		"limits.http_read_header_timeout": v.Limits.HTTPReadHeaderTimeout,
		"limits.connect_timeout":          v.Limits.ConnectTimeout,
		"auth.ban_window":                 v.Auth.BanWindow,
		"auth.ban_time":                   v.Auth.BanTime,
		"auth.failure_delay_max":          v.Auth.FailureDelayMax,
		"shutdown_grace":                  v.ShutdownGrace,
	} {
		if d == 0 {
			return fmt.Errorf("%s must be above 0", key)
		}
	}
	for _, a := range v.Admins {
		if a == "" {
			return errors.New("admins: empty user name")
		}
	}

	// Broker. In the table 0 means "no limit" for the quotas; in
	// broker.Config that is a negative value (0 takes the default).
	l := &v.Limits
	noLimit := func(n int64) int64 {
		if n == 0 {
			return -1
		}
		return n
	}
	b := &o.broker
	b.MaxPendingMsgs = l.MaxPendingMsgs
	b.MaxPendingBytes = l.MaxPendingBytes
	if b.SlowConsumer, err = broker.ParseSlowConsumerPolicy(l.SlowConsumer); err != nil {
		return fmt.Errorf("limits.slow_consumer: %w", err)
	}
	b.MaxSubsPerSession = l.MaxSubscriptionsPerSession
	b.MaxSubscriptions = int(noLimit(int64(l.MaxSubscriptions)))
	b.MaxQueueDepth = l.MaxQueueDepth
	b.MaxQueueBytes = l.MaxQueueBytes
	b.MaxRedeliveries = int(noLimit(int64(l.MaxRedeliveries)))
	if err := broker.CheckDeadLetter(v.Stomp.DeadLetterPrefix, v.Stomp.DeadLetterTopic); err != nil {
		return fmt.Errorf("stomp.dead_letter_prefix, stomp.dead_letter_topic: %w", err)
	}
	b.DeadLetterPrefix, b.NoDeadLetter = v.Stomp.DeadLetterPrefix, v.Stomp.DeadLetterPrefix == ""
	b.DeadLetterTopic, b.NoDeadLetterTopic = v.Stomp.DeadLetterTopic, v.Stomp.DeadLetterTopic == ""
	b.PerSubscriptionCopies = v.MQTT.PerSubscriptionCopies
	b.MaxRetained = int(noLimit(int64(l.MaxRetained)))
	b.MaxRetainedBytes = noLimit(l.MaxRetainedBytes)
	b.MaxRetainedPerUser = int(noLimit(int64(l.MaxRetainedPerUser)))
	b.MaxRetainedBytesPerUser = noLimit(l.MaxRetainedBytesPerUser)
	b.MaxSessionsPerUser = int(noLimit(int64(l.MaxSessionsPerUser)))
	b.MaxOfflineMsgs = l.MaxSessionQueue
	b.MaxOfflineBytes = noLimit(l.MaxSessionQueueBytes)
	// Anonymous clients own their sessions by source address (so one
	// cannot resume another's session, and the session quota counts per
	// address) everywhere but in the zero-config loopback pool: with
	// authentication, with a listener off loopback, or behind a proxy.
	b.AnonymousOwnerByAddress = o.authConfigured() || !o.allOnLoopback() || len(v.Web.TrustedProxies) > 0
	// Sessions stored before the cap existed (or with a longer expiry) get
	// it at the restore; 0 is no cap in both.
	b.MaxSessionExpiry = l.MaxSessionExpiry

	// STOMP.
	s := &o.stomp
	s.HeartbeatMin = v.Stomp.HeartbeatMin
	s.HeartbeatGrace = v.Stomp.HeartbeatGrace
	s.HeartbeatSlack = v.Stomp.HeartbeatSlack
	if s.HeartbeatSlack == 0 {
		s.HeartbeatSlack = -1 // explicit zero: no slack
	}
	s.TopicSeparator = v.Stomp.TopicSeparator[0]
	s.ConnectTimeout = l.ConnectTimeout
	s.Limits.MaxBodyLength = l.MaxFrameSize
	s.MaxFrameBeforeLogin = l.MaxFrameSizeBeforeLogin
	s.PublishRate = l.PublishRate
	s.PublishBurst = l.PublishBurst
	s.PublishBytesRate = float64(l.PublishBytesRate)
	s.MaxOutboundHeaders = l.MaxOutboundHeaders

	// MQTT.
	if l.SessionExpiry == 0 {
		return errors.New("limits.session_expiry must be above 0 (use a short duration such as \"1s\")")
	}
	m := &o.mqtt
	m.MaxPacketSize = l.MaxFrameSize + 64<<10
	m.MaxPacketBeforeLogin = l.MaxFrameSizeBeforeLogin
	m.ConnectTimeout = l.ConnectTimeout
	m.DefaultSessionExpiry = l.SessionExpiry
	m.MaxSessionExpiry = l.MaxSessionExpiry
	if m.MaxSessionExpiry == 0 {
		m.MaxSessionExpiry = -1 // no cap
	}
	m.PublishRate = l.PublishRate
	m.PublishBurst = l.PublishBurst
	m.PublishBytesRate = float64(l.PublishBytesRate)
	m.MaxOutboundHeaders = l.MaxOutboundHeaders

	// Web.
	w := &o.web
	w.AllowedOrigins = v.Web.AllowedOrigins
	w.MaxMessageSize = v.Web.MaxMessageSize
	w.ParkAfter = v.Web.ParkIdleAfter
	if w.ParkAfter <= 0 {
		w.ParkAfter = -1 // web: never park
	}
	if w.MaxMessageSize == 0 {
		// Above the largest STOMP frame (a MaxFrameSize body and 64 KiB
		// of headers) and MQTT packet (MaxFrameSize + 64 KiB): a frame
		// just over those gets the protocol's own error over WebSocket as
		// over TCP, and only what is far beyond gets 1009.
		w.MaxMessageSize = int64(max(s.Limits.WithDefaults().MaxHeaderBytes+l.MaxFrameSize, m.MaxPacketSize)) + web.ReadLimitMargin
	}
	w.AllowedHosts = v.Web.AllowedHosts
	if len(w.AllowedHosts) == 0 && o.httpOnLoopback() {
		w.AllowedHosts = web.LoopbackHosts
	}
	if w.TrustedProxies, err = web.ParseTrustedProxies(v.Web.TrustedProxies); err != nil {
		return fmt.Errorf("web.trusted_proxies: %w", err)
	}
	w.MaxConnections = l.MaxConnections
	w.MaxConnectionsPerIP = int(noLimit(int64(l.MaxConnectionsPerIP)))
	w.ConnectRatePerIP = l.ConnectRatePerIP
	if w.ConnectRatePerIP == 0 {
		w.ConnectRatePerIP = -1
	}
	w.ConnectBurstPerIP = l.ConnectBurstPerIP
	w.HTTPIdleTimeout = l.HTTPIdleTimeout
	w.HTTPReadHeaderTimeout = l.HTTPReadHeaderTimeout
	w.SeparateAdmin = v.AdminAddr != ""
	return o.finishCluster()
}
