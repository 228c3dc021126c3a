package main

import (
	"os"
	"testing"
)

// FuzzConfig feeds arbitrary bytes to the config file reader: it returns
// an error or a configuration, never panics, and an accepted file also
// passes through finish and the exposure check without panicking.
func FuzzConfig(f *testing.F) {
	if data, err := os.ReadFile("../../duplex.example.toml"); err == nil {
		f.Add(data)
	}
	for _, s := range []string{
		"addr = \"127.0.0.1:0\"\n[limits]\nmax_frame_size = \"1MiB\"\n",
		"[[acl]]\nuser = \"a\"\naccess = \"allow\"\ntopic = \"%u/#\"\n[groups]\ng = [\"a\"]\n",
		"[tls]\nclient_certs = \"require\"\n",
		"allow_anonymous = true\naddr = \"0.0.0.0:1\"\n",
		"[limits]\nmax_retained_bytes = 9223372036854775807\nsession_expiry = \"-1s\"\n",
		"a.b.c = 1\n[[acl]]\n[[acl]]\nqueue = 5\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		o := newOptions()
		if err := o.applyTOML("fuzz.toml", data, "/cfg"); err != nil {
			return
		}
		if err := o.finish(); err != nil {
			return
		}
		_ = o.checkExposure()
		_ = o.adminOpen()
		_ = o.authConfig()
	})
}
