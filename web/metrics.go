package web

import (
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/store"
	"github.com/duplexmq/duplex/subprotocol"
)

// /metrics (issue 9): Prometheus text exposition from a private registry
// (no global state, so several Servers in one process, as in tests, do not
// collide). Every duplex_ metric is read at scrape time from the router's,
// the protocols', admission control's and the store's counters by one
// custom Collector: the publish path pays nothing for /metrics. The one
// exception is duplex_store_commit_seconds, a histogram the store feeds on
// every commit (CommitHistogram), which costs an Observe per transaction.
//
// Metrics (all prefixed duplex_):
//
//	build_info{version}                       gauge 1
//	connections{protocol,version,transport}   gauge: connected sessions
//	sessions, persistent_sessions             gauge: all sessions (connected and kept offline); persistent ones
//	subscriptions                             gauge: every session's subscriptions (queue consumers included)
//	messages_received_total                   counter: messages accepted for routing (topics and queues)
//	messages_delivered_total                  counter: deliveries handed to subscribers
//	bytes_received_total, bytes_sent_total    counter: bytes on the wire, all protocols together
//	                                          (the router keeps no per-protocol byte counter)
//	drops_total{cause}                        counter: slow_consumer, slow_closed (sessions), no_subscriber,
//	                                          quota, offline, not_authorized
//	retained_messages, retained_bytes         gauge
//	queues, queue_messages{state}             gauge: state ready|unacked
//	stored_messages                           gauge: persistent-session messages in the store
//	auth_failures_total{protocol}             counter: CONNECTs refused (credentials, ACL, ban, quota)
//	credential_expired_total{protocol}        counter
//	acl_denied_total{protocol,action}         counter: action publish|subscribe
//	protocol_events_total{protocol,event}     counter: too_large_before_login, headers_dropped, publish_throttled
//	refusals_total{cause}                     counter: broker refusals: retained_quota, session_quota, client_id_owned
//	admission_connections, admission_connections_limit, admission_sockets, admission_sockets_limit, admission_sources  gauge
//	admission_refused_total{cause}            counter: max_connections, per_ip, rate, sockets
//	tls_handshake_failures_total              counter
//	store_file_bytes                          gauge (with a store)
//	store_commits_total, store_commit_seconds_total  counter (with a store)
//	store_commit_seconds                      histogram (with Config.CommitLatency)
//	store_commit_batches                      histogram: batches per commit (with Config.CommitLatency)
//
// plus the Go runtime's go_* and the process's process_* metrics.
//
// The router leaves the broker's own $SYS publications out of its
// counters, so messages_received_total counts client messages only.

// CommitHistogram is the store's commit latency histogram. The integrator
// makes one before opening the store, passes its Observe to
// store.Options.OnCommit and the histogram to Config.CommitLatency.
type CommitHistogram struct {
	seconds prometheus.Histogram
	batches prometheus.Histogram
}

// NewCommitHistogram returns an empty commit histogram.
func NewCommitHistogram() *CommitHistogram {
	return &CommitHistogram{
		seconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "duplex_store_commit_seconds",
			Help: "Duration of the store's write transactions, fsync included (a group commit counts once).",
			Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
				0.05, 0.1, 0.25, 0.5, 1, 2.5},
		}),
		batches: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "duplex_store_commit_batches",
			Help:    "Writes carried by each store transaction (group commit).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11), // 1 .. 1024
		}),
	}
}

// Observe records one commit; it has the signature of
// store.CommitObserver. Cheap (two atomic histogram updates).
func (h *CommitHistogram) Observe(took time.Duration, batches int) {
	h.seconds.Observe(took.Seconds())
	h.batches.Observe(float64(batches))
}

// Describe implements prometheus.Collector.
func (h *CommitHistogram) Describe(ch chan<- *prometheus.Desc) {
	h.seconds.Describe(ch)
	h.batches.Describe(ch)
}

// Collect implements prometheus.Collector.
func (h *CommitHistogram) Collect(ch chan<- prometheus.Metric) {
	h.seconds.Collect(ch)
	h.batches.Collect(ch)
}

// newMetricsHandler builds /metrics: a private registry with the Go and
// process collectors, the broker's collector and the commit histogram.
func (s *Server) newMetricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newBrokerCollector(s),
	)
	if s.cfg.CommitLatency != nil {
		reg.MustRegister(s.cfg.CommitLatency)
	}
	reg.MustRegister(s.cfg.Collectors...)
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError,
		Registry:            reg, // promhttp_metric_handler_errors_total
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	})
	return promhttp.InstrumentMetricHandler(reg, h)
}

// brokerCollector reads every duplex_ metric at scrape time.
type brokerCollector struct {
	s *Server

	buildInfo, connections, sessions, persistent, subscriptions          *prometheus.Desc
	received, delivered, bytesIn, bytesOut, drops                        *prometheus.Desc
	retained, retainedBytes, queues, queueMsgs, stored                   *prometheus.Desc
	authFailures, credExpired, aclDenied, protoEvents, refusals          *prometheus.Desc
	admConns, admConnsLimit, admSockets, admSocketsLimit, admSources     *prometheus.Desc
	admRefused, tlsFailures, storeFile, storeCommits, storeCommitSeconds *prometheus.Desc
}

func newBrokerCollector(s *Server) *brokerCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("duplex_"+name, help, labels, nil)
	}
	return &brokerCollector{
		s:             s,
		buildInfo:     d("build_info", "Duplex's version (without the leading \"duplex \"), as a label; always 1.", "version"),
		connections:   d("connections", "Connected sessions by protocol, protocol version and transport.", "protocol", "version", "transport"),
		sessions:      d("sessions", "Sessions: connected ones and persistent ones kept offline."),
		persistent:    d("persistent_sessions", "Persistent sessions, online and offline."),
		subscriptions: d("subscriptions", "Subscriptions of all sessions, online and offline, queue consumers included."),
		received:      d("messages_received_total", "Messages accepted for routing (topics and queues), the broker's $SYS publications excluded."),
		delivered:     d("messages_delivered_total", "Deliveries handed to subscribers."),
		bytesIn:       d("bytes_received_total", "Bytes read from clients (frames and packets as on the wire), all protocols."),
		bytesOut:      d("bytes_sent_total", "Bytes written to clients, all protocols."),
		drops: d("drops_total", "Messages dropped or refused, by cause: slow_consumer (QoS 0 deliveries dropped by the drop policy), "+
			"slow_closed (sessions closed as slow consumers), no_subscriber, quota, offline (not kept for an offline session), not_authorized.", "cause"),
		retained:      d("retained_messages", "Topics holding a retained message."),
		retainedBytes: d("retained_bytes", "Payload bytes of the retained messages."),
		queues:        d("queues", "Point-to-point queues and durable subscriptions."),
		queueMsgs:     d("queue_messages", "Messages in queues, by state (ready, unacked).", "state"),
		stored:        d("stored_messages", "QoS 1/2 messages in the store for persistent sessions."),
		authFailures:  d("auth_failures_total", "Connections refused at CONNECT (bad credentials, not authorized, banned, client id owned, session quota).", "protocol"),
		credExpired:   d("credential_expired_total", "Connections closed because their credential expired.", "protocol"),
		aclDenied:     d("acl_denied_total", "Publishes and subscriptions the ACL refused.", "protocol", "action"),
		protoEvents: d("protocol_events_total", "Protocol events: too_large_before_login (connections closed), "+
			"headers_dropped (headers past the outbound limit), publish_throttled (publishes that waited for the rate limit).", "protocol", "event"),
		refusals:           d("refusals_total", "Broker refusals by cause: retained_quota, session_quota, client_id_owned.", "cause"),
		admConns:           d("admission_connections", "Open protocol connections (WebSocket and TCP)."),
		admConnsLimit:      d("admission_connections_limit", "The cap on protocol connections (limits.max_connections)."),
		admSockets:         d("admission_sockets", "Open sockets accepted by the listeners."),
		admSocketsLimit:    d("admission_sockets_limit", "The cap on open sockets."),
		admSources:         d("admission_sources", "Source addresses admission control tracks."),
		admRefused:         d("admission_refused_total", "Connections refused by admission control, by cause: max_connections, per_ip, rate, sockets.", "cause"),
		tlsFailures:        d("tls_handshake_failures_total", "TLS handshakes that failed or timed out."),
		storeFile:          d("store_file_bytes", "Size of the store's data file."),
		storeCommits:       d("store_commits_total", "Write transactions of the store (a group commit counts once)."),
		storeCommitSeconds: d("store_commit_seconds_total", "Total duration of the store's write transactions."),
	}
}

// Describe implements prometheus.Collector.
func (c *brokerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.buildInfo, c.connections, c.sessions, c.persistent, c.subscriptions,
		c.received, c.delivered, c.bytesIn, c.bytesOut, c.drops,
		c.retained, c.retainedBytes, c.queues, c.queueMsgs, c.stored,
		c.authFailures, c.credExpired, c.aclDenied, c.protoEvents, c.refusals,
		c.admConns, c.admConnsLimit, c.admSockets, c.admSocketsLimit, c.admSources,
		c.admRefused, c.tlsFailures, c.storeFile, c.storeCommits, c.storeCommitSeconds,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: one Router.Stats (a pass over
// the sessions and queues under their locks, as GET /api/stats), one
// ConnCounts, atomic loads for the rest.
func (c *brokerCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	st := s.router.Stats()
	ct := s.router.Counters()

	gauge(c.buildInfo, 1, strings.TrimPrefix(s.cfg.Version, "duplex "))
	for _, cc := range s.router.ConnCounts() {
		gauge(c.connections, float64(cc.N), cc.Protocol, cc.Version, cc.Transport)
	}
	gauge(c.sessions, float64(st.Sessions))
	gauge(c.persistent, float64(st.PersistentSessions))
	gauge(c.subscriptions, float64(st.AllSubscriptions))

	counter(c.received, ct.Published)
	counter(c.delivered, ct.Delivered)
	counter(c.bytesIn, ct.BytesIn)
	counter(c.bytesOut, ct.BytesOut)
	for _, dc := range dropCauses(ct) {
		counter(c.drops, dc.n, dc.cause)
	}

	gauge(c.retained, float64(st.Retained))
	gauge(c.retainedBytes, float64(st.RetainedBytes))
	gauge(c.queues, float64(st.Queues))
	gauge(c.queueMsgs, float64(st.QueueReady), "ready")
	gauge(c.queueMsgs, float64(st.QueueUnacked), "unacked")
	gauge(c.stored, float64(st.StoredMsgs))

	for name, ps := range s.protocolStats() {
		counter(c.authFailures, ps.AuthFailures, name)
		counter(c.credExpired, ps.CredentialExpired, name)
		counter(c.aclDenied, ps.PublishDenied, name, "publish")
		counter(c.aclDenied, ps.SubscribeDenied, name, "subscribe")
		counter(c.protoEvents, ps.TooLargeBeforeLogin, name, "too_large_before_login")
		counter(c.protoEvents, ps.HeadersDropped, name, "headers_dropped")
		counter(c.protoEvents, ps.PublishThrottled, name, "publish_throttled")
	}
	counter(c.refusals, st.RetainedRefused, "retained_quota")
	counter(c.refusals, st.SessionQuotaRefused, "session_quota")
	counter(c.refusals, st.ClientIDRefused, "client_id_owned")

	as := s.AdmissionStats()
	gauge(c.admConns, float64(as.Connections))
	gauge(c.admConnsLimit, float64(as.MaxConnections))
	gauge(c.admSockets, float64(as.Sockets))
	gauge(c.admSocketsLimit, float64(as.MaxSockets))
	gauge(c.admSources, float64(as.Sources))
	counter(c.admRefused, as.RefusedTotal, "max_connections")
	counter(c.admRefused, as.RefusedPerIP, "per_ip")
	counter(c.admRefused, as.RefusedRate, "rate")
	counter(c.admRefused, as.RefusedSockets, "sockets")
	counter(c.tlsFailures, as.TLSHandshakeFailures)

	if ss, ok := s.storeStats(); ok {
		gauge(c.storeFile, float64(ss.FileSize))
		counter(c.storeCommits, ss.Commits)
		ch <- prometheus.MustNewConstMetric(c.storeCommitSeconds, prometheus.CounterValue, ss.CommitSeconds)
	}
}

// dropCause is one cause of drops_total.
type dropCause struct {
	cause string
	n     uint64
}

// dropCauses lists the drop counters by cause, in the order of Drops.
func dropCauses(ct broker.Counters) []dropCause {
	return []dropCause{
		{"slow_consumer", ct.Dropped},
		{"slow_closed", ct.SlowConsumers},
		{"no_subscriber", ct.NoSubscriber},
		{"quota", ct.QuotaRefused},
		{"offline", ct.OfflineDropped},
		{"not_authorized", ct.Denied},
	}
}

// protocolStats returns the counters of the protocols that keep them, by
// name.
func (s *Server) protocolStats() map[string]subprotocol.Stats {
	out := make(map[string]subprotocol.Stats, len(s.reg))
	for _, p := range s.reg {
		if sp, ok := p.(interface{ Stats() subprotocol.Stats }); ok {
			out[p.Name()] = sp.Stats()
		}
	}
	return out
}

// storeStats returns the store's Stats when there is a store that keeps
// them.
func (s *Server) storeStats() (store.Stats, bool) {
	if s.cfg.Store == nil {
		return store.Stats{}, false
	}
	return store.StatsOf(s.cfg.Store)
}
