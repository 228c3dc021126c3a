package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// JetStream: what must outlive a node lives in replicated JetStream
// streams (retained messages: retained.go). In embedded mode every node's
// server runs JetStream, clustered over the same routes, its files under
// Config.StoreDir; in external mode the streams are the external NATS's
// (its account must have JetStream; without it the node falls back to
// the core subjects and says so).

// Embedded JetStream limits. The streams are file-backed, so memory is
// only the servers' own working set; the store keeps nats-server's
// default (75% of the free disk, at most 1 TB).
const jsMaxMemory = 64 << 20

// jetStreamOptions turns JetStream on in an embedded server's options
// when c has a store folder and peers (nats-server refuses clustered
// JetStream without configured routes: "JetStream cluster requires
// configured routes"; a node that only waits for others to dial it runs
// without, and says so).
func jetStreamOptions(c Config, o *server.Options) {
	if c.StoreDir == "" {
		return
	}
	if len(c.Peers) == 0 {
		c.Log.Warn("cluster: no cluster.peers, so no JetStream on this node: retained messages reach only the nodes up when they are published, and persistent sessions and durable subscriptions keep their messages only on the node that holds them (list the other nodes in cluster.peers on every node)",
			"node", c.NodeID)
		return
	}
	o.JetStream = true
	o.StoreDir = c.StoreDir
	o.JetStreamMaxMemory = jsMaxMemory
}

// jetStreamWanted reports whether the node uses JetStream: embedded with
// a store folder and peers, or external (if the NATS has it).
func (c Config) jetStreamWanted() bool {
	return !c.Embedded() || c.StoreDir != "" && len(c.Peers) > 0
}

// replicas is the replication factor of the node's streams:
// Config.Replicas, or min(3, nodes): in embedded mode the configured
// nodes, in external mode the NATS servers the connection knows of.
func (n *Node) replicas() int {
	if n.cfg.Replicas > 0 {
		return n.cfg.Replicas
	}
	nodes := 1 + len(n.cfg.Peers)
	if !n.cfg.Embedded() {
		nodes = max(1, len(n.nc.Servers()))
	}
	return min(3, nodes)
}

// streamName is the name of the cluster's stream of a kind ("retained"):
// "duplex_<name>_<kind>", the cluster name kept if it is made of letters,
// digits, '-' and '_', else a hash of it (stream names may not hold '.',
// '*', '>', spaces or path separators).
func streamName(cluster, kind string) string {
	ok := cluster != ""
	for i := 0; i < len(cluster) && ok; i++ {
		c := cluster[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
	}
	if !ok || len(cluster) > 64 {
		h := sha256.Sum256([]byte(cluster))
		cluster = hex.EncodeToString(h[:8])
	}
	return "duplex_" + cluster + "_" + kind
}

// jsNotEnabled reports the errors of a NATS without JetStream for the
// account. (A JetStream API request to a server without JetStream has no
// responders at all: jsLoop counts that too, in external mode.)
func jsNotEnabled(err error) bool {
	return errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount)
}

// jsLoop sets up the node's JetStream side (the retained stream and its
// consumer, retained.go), retrying while the JetStream cluster forms (a
// stream needs its replicas' servers up and a meta leader), and keeps it
// until Close.
func (n *Node) jsLoop() {
	defer n.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-n.done
		cancel()
	}()
	js, err := jetstream.New(n.nc)
	if err != nil {
		n.cfg.Log.Error("cluster: JetStream", "err", err)
		return
	}
	var stopRetained func()
	err = n.retryStart(ctx, "JetStream", func() error {
		stop, err := n.startRetained(ctx, js)
		switch {
		case err == nil:
			stopRetained = stop
		case jsNotEnabled(err) || !n.cfg.Embedded() && errors.Is(err, nats.ErrNoResponders):
			return stopRetry{err}
		}
		return err
	})
	switch {
	case ctx.Err() != nil:
		return
	case err != nil:
		n.jsOff.Store(true)
		n.cfg.Log.Warn("cluster: the NATS account has no JetStream; retained messages reach only the nodes up when they are published, and persistent sessions keep their messages only on the node that holds them",
			"node", n.cfg.NodeID)
		return
	}
	defer stopRetained()
	n.startInbound(ctx, js)        // qos2in.go
	n.startDurable(ctx, js)        // durable.go
	defer n.startQueues(ctx, js)() // queue.go
	<-n.done
}

// jsStartupNoise reports the embedded server's warnings that are normal
// while a JetStream cluster forms or works (Node.Ready says when it is
// not ready): they are logged at Debug.
func jsStartupNoise(msg string) bool {
	for _, p := range []string{"Waiting for routing to be established", "JetStream has not established contact with a meta leader",
		"Metalayer blocking snapshot", "JetStream cluster no metadata leader", "Healthcheck failed"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}
