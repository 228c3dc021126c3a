package cluster

import "testing"

// TestClusterSessionWithoutSubscriptions: a persistent session that never
// subscribed is kept by the cluster too. After a SIGKILL of its node it
// resumes on another with Session Present [MQTT-3.2.2-2], so the client
// keeps the QoS 1/2 PUBLISHes it has in flight and sends them again
// [MQTT-4.4.0-1] instead of dropping them as a new session would have it.
func TestClusterSessionWithoutSubscriptions(t *testing.T) {
	nodes := startEmbedded(t, "nosub")
	if _, present := dialRaw(t, nodes[1].mqtt, "ps-nosub", true); present {
		t.Fatal("a clean start with Session Present")
	}
	nodes[1].p.Kill()
	if _, present := dialRaw(t, nodes[2].mqtt, "ps-nosub", false); !present {
		t.Fatal("resumed on node 3 without Session Present")
	}
}
