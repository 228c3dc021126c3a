// The [cluster] section: its settings, its checks, and the node's start
// (broker/cluster), its readiness and its metrics.

package main

import (
	"log/slog"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/duplexmq/duplex/broker/cluster"
)

// clusterValues are the [cluster] keys as read.
type clusterValues struct {
	Name, Listen                string
	Peers, NATSURLs             []string
	TLSCert, TLSKey, TLSCA      string
	User, Password, Credentials string
	ForwardQueue, ReceiveQueue  int
	Replicas                    int
	ClaimWait                   time.Duration
	QueueAckWait                time.Duration
	cfg                         cluster.Config
}

// clusterSettings are the [cluster] rows of the settings table.
func clusterSettings(c *clusterValues) []*setting {
	return []*setting{
		{key: "cluster.name", flag: "cluster-name", def: "", target: &c.Name,
			help: "cluster name: the embedded NATS servers' cluster name and part of every NATS subject, so that clusters may share an external NATS (empty: duplex)"},
		{key: "cluster.listen", flag: "cluster-listen", def: "", target: &c.Listen,
			help: "embedded NATS: this node's route address, host:port, that the other nodes' peers name (empty: no embedded NATS; with nats_urls empty too, a single node without NATS)"},
		{key: "cluster.peers", flag: "cluster-peers", def: "", target: &c.Peers,
			help: "embedded NATS: the other nodes' route addresses (host:port); comma-separated as a flag"},
		{key: "cluster.nats_urls", flag: "cluster-nats-urls", def: "", target: &c.NATSURLs,
			help: "external NATS: server URLs (nats://host:4222, tls://...) instead of the embedded server; comma-separated as a flag"},
		{key: "cluster.tls_cert", flag: "cluster-tls-cert", def: "", kind: kindPath, target: &c.TLSCert,
			help: "PEM certificate: the embedded routes' (both ways), or a client certificate for an external NATS"},
		{key: "cluster.tls_key", flag: "cluster-tls-key", def: "", kind: kindPath, target: &c.TLSKey,
			help: "PEM private key of tls_cert"},
		{key: "cluster.tls_ca", flag: "cluster-tls-ca", def: "", kind: kindPath, target: &c.TLSCA,
			help: "PEM CA certificates that verify the other nodes' route certificates, or the external NATS servers"},
		{key: "cluster.user", flag: "cluster-user", def: "", target: &c.User,
			help: "user name of the routes (every node the same) or of the external NATS connection"},
		{key: "cluster.password", flag: "cluster-password", def: "", target: &c.Password,
			help: "password of user (prefer the DUPLEX_CLUSTER_PASSWORD variable to a flag)"},
		{key: "cluster.credentials", flag: "cluster-credentials", def: "", kind: kindPath, target: &c.Credentials,
			help: "external NATS: a credentials file (JWT and NKey seed) instead of user and password"},
		{key: "cluster.forward_queue", flag: "cluster-forward-queue", def: "8192", min: 1, target: &c.ForwardQueue,
			help: "messages waiting to be published to the other nodes; past it (or while NATS is down) they are dropped, counted"},
		{key: "cluster.receive_queue", flag: "cluster-receive-queue", def: "65536", min: 1, target: &c.ReceiveQueue,
			help: "messages from other nodes waiting for the router; past it NATS drops them, counted"},
		{key: "cluster.replicas", flag: "cluster-replicas", def: "0", min: 0, target: &c.Replicas,
			help: "replication factor of the JetStream streams (retained messages); 0: min(3, nodes). Embedded JetStream keeps its files in <data>/nats"},
		{key: "cluster.claim_wait", flag: "cluster-claim-wait", def: "2s", target: &c.ClaimWait,
			help: "how long a connection waits for the node that holds its client id to hand the session over; past it the session starts as this node knows it"},
		{key: "cluster.queue_ack_wait", flag: "cluster-queue-ack-wait", def: "30s", target: &c.QueueAckWait,
			help: "how long a /queue/ message held by a node that stops answering (killed, cut off) waits before the cluster hands it to another node's consumer, marked redelivered"},
	}
}

// finishCluster checks the [cluster] values and derives cluster.Config
// (zero, Enabled false, when the section is empty). Errors name the key.
func (o *options) finishCluster() error {
	c := &o.v.Cluster
	c.cfg = cluster.Config{
		Name: c.Name, Listen: c.Listen, Peers: c.Peers, NATSURLs: c.NATSURLs,
		TLSCert: c.TLSCert, TLSKey: c.TLSKey, TLSCA: c.TLSCA,
		User: c.User, Password: c.Password, Credentials: c.Credentials,
		MaxPayload:   o.v.Limits.MaxFrameSize + 128<<10,
		ForwardQueue: c.ForwardQueue, ReceiveQueue: c.ReceiveQueue,
		Replicas: c.Replicas, StoreDir: filepath.Join(o.v.Data, "nats"),
		ClaimWait: c.ClaimWait, QueueAckWait: c.QueueAckWait,
	}
	return c.cfg.Check()
}

// startCluster makes the node's cluster link when [cluster] asks for one
// (nil, nil otherwise: no NATS at all, broker.Config.Peers stays nil). It
// is started with the router by node.Start.
func startCluster(o *options, log *slog.Logger) (*cluster.Node, error) {
	cfg := o.v.Cluster.cfg
	if !cfg.Enabled() {
		return nil, nil
	}
	cfg.Log = log
	if cfg.Embedded() && !isLoopback(cfg.Listen) && cfg.User == "" && cfg.TLSCA == "" {
		log.Warn("cluster.listen is not a loopback address and routes need neither a password nor a certificate: "+
			"anyone who reaches it can join the cluster and read and publish everything (set cluster.user and cluster.password, or cluster.tls_ca)",
			"cluster.listen", cfg.Listen)
	}
	return cluster.New(cfg)
}

// clusterCollector exports a node's cluster counters on /metrics.
type clusterCollector struct {
	n                                         *cluster.Node
	out, outDropped, in, inDropped, malformed *prometheus.Desc
	dups, subs, routes, joined                *prometheus.Desc
	info, peers                               *prometheus.Desc // cluster_admin.go
	queueStored, queueIn                      *prometheus.Desc // broker/cluster/queue.go
	durStored, durSkipped                     *prometheus.Desc // broker/cluster/durable_interest.go
}

func newClusterCollector(n *cluster.Node) *clusterCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("duplex_cluster_"+name, help, nil, prometheus.Labels{"node": n.ID()})
	}
	c := &clusterCollector{n: n,
		out:        d("messages_out_total", "Messages published to the other nodes through NATS."),
		outDropped: d("messages_out_dropped_total", "Messages not published to the other nodes: send queue full, NATS down, or over NATS's max_payload."),
		in:         d("messages_in_total", "Messages from other nodes routed here."),
		inDropped:  d("messages_in_dropped_total", "Messages from other nodes dropped: receive queue full (NATS slow consumer) or refused by the router."),
		malformed:  d("messages_malformed_total", "Messages on the cluster's subjects that do not decode (a foreign publisher)."),
		dups:       d("messages_duplicate_total", "Copies dropped: one message matching several of this node's NATS subscriptions."),
		subs:       d("subscriptions", "NATS subscriptions this node holds (its local filters' subjects)."),
		routes:     d("routes", "Routes of the embedded NATS server to other nodes (0 with an external NATS)."),
		joined:     d("joined", "1 while the node is joined (what /readyz checks), else 0."),
		info:       nodeInfoDesc(),
		peers:      d("peers", "Other nodes this node's embedded NATS server has a route to (0 with an external NATS)."),
	}
	c.queueStored = d("queue_messages_stored_total", "STOMP /queue/ SENDs on this node stored in the cluster's queue stream (JetStream).")
	c.queueIn = d("queue_messages_in_total", "STOMP /queue/ messages this node took from the cluster's queue stream for its consumers.")
	c.durStored = d("durable_messages_stored_total", "QoS 1/2 topic messages published on this node written to the durable stream (a persistent subscription somewhere wanted them).")
	c.durSkipped = d("durable_messages_skipped_total", "QoS 1/2 topic messages published on this node not written to the durable stream: no persistent subscription wanted them.")
	return c
}

func (c *clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	prometheus.DescribeByCollect(c, ch)
}

func (c *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.n.Stats()
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	counter(c.out, s.Forwarded.Load())
	counter(c.outDropped, s.ForwardDropped.Load())
	counter(c.in, s.Received.Load())
	counter(c.inDropped, s.ReceiveDropped.Load())
	counter(c.malformed, s.Malformed.Load())
	counter(c.dups, s.Duplicates.Load())
	gauge(c.subs, float64(s.Subscriptions.Load()))
	gauge(c.routes, float64(c.n.Routes()))
	joined := 0.0
	if c.n.Ready() == nil {
		joined = 1
	}
	gauge(c.joined, joined)
	ch <- prometheus.MustNewConstMetric(c.info, prometheus.GaugeValue, 1, c.n.ID(), c.n.Name())
	gauge(c.peers, float64(c.n.PeersRouted()))
	stored, in := c.n.QueueStats()
	counter(c.queueStored, stored)
	counter(c.queueIn, in)
	stored, skipped := c.n.DurableStats()
	counter(c.durStored, stored)
	counter(c.durSkipped, skipped)
}
