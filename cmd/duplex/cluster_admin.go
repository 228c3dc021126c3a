package main

import (
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/duplexmq/duplex/broker/cluster"
)

// clusterLink is the node's cluster link as the management API sees it
// (web.ClusterLink): the node, and the addresses this node listens on,
// which the other nodes' admin views show. The addresses are known once
// the listeners are open, after web.New.
type clusterLink struct {
	*cluster.Node
	addrs atomic.Pointer[[]string]
}

// Addresses returns the listeners' addresses ("http 127.0.0.1:8080",
// "mqtt-tcp 127.0.0.1:1883" and so on), nil before they open.
func (c *clusterLink) Addresses() []string {
	if p := c.addrs.Load(); p != nil {
		return *p
	}
	return nil
}

// setListeners records the opened listeners' addresses.
func (c *clusterLink) setListeners(lns []openListener) {
	a := make([]string, 0, len(lns))
	for _, l := range lns {
		// name is "listening" (the HTTP and WebSocket listener) or
		// "mqtt-tcp listening" and so on.
		kind := strings.TrimSpace(strings.TrimSuffix(l.name, "listening"))
		if kind == "" {
			kind = "http"
		}
		a = append(a, kind+" "+l.ln.Addr().String())
	}
	c.addrs.Store(&a)
}

// nodeInfoDesc is duplex_node_info{node,cluster} 1, the cluster node's
// identity as an info metric. The node label is not added to every
// duplex_ family: Prometheus already tells targets apart by their
// instance label, a const label would change every series' identity when
// a node joins a cluster (breaking dashboards and rate() across the
// switch), and the info metric is the convention (as build_info):
// join it where a query wants the node id, e.g.
//
//	duplex_connections * on(instance) group_left(node) duplex_node_info
//
// The duplex_cluster_ families carry the node label themselves.
func nodeInfoDesc() *prometheus.Desc {
	return prometheus.NewDesc("duplex_node_info",
		"1, with this cluster node's id and cluster name as labels (join on instance to add node to other series).",
		[]string{"node", "cluster"}, nil)
}
