package cluster

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/duplexmq/duplex/internal/testutil"
)

// TestClusterReadyz: a node whose peers are not up serves but is not
// ready (/readyz 503 naming the cause, duplex_cluster_joined 0); once a
// peer is up, both are ready.
func TestClusterReadyz(t *testing.T) {
	t.Parallel()
	bin := testutil.BuildBinary(t)
	r1, r2 := freeAddr(t), freeAddr(t)
	start := func(listen, peer string) *node {
		p := testutil.StartConfig(t, testutil.Config{Bin: bin, Args: []string{"-addr", "127.0.0.1:0", "-mqtt-tcp-addr=", "-stomp-tcp-addr=",
			"-data", filepath.Join(t.TempDir(), "data"), "-cluster-listen", listen, "-cluster-peers", peer}})
		return &node{p: p, http: "http://" + p.Addr("")}
	}
	n1 := start(r1, r2)
	code, body := get(n1.http + "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "route") {
		t.Fatalf("/readyz with no peer up: %d %q, want 503 naming the missing route", code, body)
	}
	if j := n1.metric(t, "duplex_cluster_joined"); j != 0 {
		t.Errorf("duplex_cluster_joined = %v with no peer up", j)
	}
	n2 := start(r2, r1)
	for _, n := range []*node{n1, n2} {
		testutil.EventuallyErr(t, wait, func() error {
			if code, body := get(n.http + "/readyz"); code != http.StatusOK {
				return fmt.Errorf("/readyz %d %s", code, body)
			}
			return nil
		})
	}
	if j := n1.metric(t, "duplex_cluster_joined"); j != 1 {
		t.Errorf("duplex_cluster_joined = %v once joined", j)
	}
}
