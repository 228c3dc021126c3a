package main

import (
	"slices"
	"strings"
	"testing"
)

// TestClusterSettings: the [cluster] keys from flags and the file, and
// their errors naming the key.
func TestClusterSettings(t *testing.T) {
	o, err := parseOptions([]string{"-cluster-name", "c", "-cluster-listen", "127.0.0.1:6222",
		"-cluster-peers", "127.0.0.1:6223,127.0.0.1:6224"}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	c := o.v.Cluster.cfg
	if !c.Enabled() || !c.Embedded() || c.Name != "c" || !slices.Equal(c.Peers, []string{"127.0.0.1:6223", "127.0.0.1:6224"}) {
		t.Fatalf("cluster config %+v", c)
	}
	if o, err = parseOptions(nil, noEnv); err != nil || o.v.Cluster.cfg.Enabled() {
		t.Fatalf("zero config enables a cluster: %v", err)
	}
	path := writeFile(t, "c.toml", "[cluster]\nnats_urls = [\"nats://a:4222\", \"nats://b:4222\"]\nuser = \"u\"\npassword = \"p\"\n")
	if o, err = parseOptions([]string{"-config", path}, noEnv); err != nil {
		t.Fatal(err)
	}
	if c := o.v.Cluster.cfg; c.Embedded() || len(c.NATSURLs) != 2 || c.User != "u" {
		t.Fatalf("external config %+v", c)
	}
	for _, c := range []struct {
		args []string
		key  string
	}{
		{[]string{"-cluster-peers", "127.0.0.1:6223"}, "cluster.listen"},
		{[]string{"-cluster-listen", "nohost"}, "cluster.listen"},
		{[]string{"-cluster-listen", "127.0.0.1:1", "-cluster-peers", "x:99999"}, "cluster.peers"},
		{[]string{"-cluster-listen", "127.0.0.1:1", "-cluster-nats-urls", "nats://a"}, "cluster.nats_urls"},
		{[]string{"-cluster-nats-urls", "nats://a", "-cluster-user", "u"}, "cluster.password"},
		{[]string{"-cluster-listen", "127.0.0.1:1", "-cluster-tls-cert", "c.pem"}, "cluster.tls_key"},
		{[]string{"-cluster-listen", "127.0.0.1:1", "-cluster-credentials", "x.creds"}, "cluster.credentials"},
	} {
		_, err := parseOptions(c.args, noEnv)
		if err == nil || !strings.Contains(err.Error(), c.key) {
			t.Errorf("%q: error %v does not name %s", c.args, err, c.key)
		}
	}
}
