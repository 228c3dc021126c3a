package web

import (
	"io/fs"
	"net/http"
	"strings"
	"testing"
)

// TestUI: the embedded UI is served at / without a login, with the
// right Content-Types, the security headers and ETags; unknown paths and
// directories are 404.
func TestUI(t *testing.T) {
	s := newGW(t, Config{AdminAuth: fakeAuth{}})
	check := func(path string, wantCode int, wantType string) (*http.Response, string) {
		t.Helper()
		resp, body := loginDo(t, nil, "GET", s.hs.URL+path, "", nil)
		if resp.StatusCode != wantCode {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, wantCode)
		}
		if wantType != "" && resp.Header.Get("Content-Type") != wantType {
			t.Errorf("%s: Content-Type %q, want %q", path, resp.Header.Get("Content-Type"), wantType)
		}
		for k, want := range map[string]string{
			"X-Content-Type-Options": "nosniff",
			"Referrer-Policy":        "no-referrer",
			"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; " +
				"connect-src 'self'; img-src 'self' data:; font-src 'self'; object-src 'none'; " +
				"base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
		} {
			if got := resp.Header.Get(k); got != want {
				t.Errorf("%s: %s %q", path, k, got)
			}
		}
		return resp, body
	}
	resp, body := check("/", 200, "text/html; charset=utf-8")
	if !strings.Contains(strings.ToLower(body), "<!doctype html") || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Errorf("index: Cache-Control %q, body %.80q", resp.Header.Get("Cache-Control"), body)
	}
	etag := resp.Header.Get("ETag")
	if etag == "" {
		t.Error("no ETag")
	}
	// Revalidation.
	resp, _ = loginDo(t, nil, "GET", s.hs.URL+"/", "", header("If-None-Match", etag))
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %d", resp.StatusCode)
	}
	_, body = check("/lib.js", 200, "text/javascript; charset=utf-8")
	if !strings.Contains(body, "function api(") {
		t.Errorf("lib.js: %.80q", body)
	}
	// Every embedded file is served with a known type.
	_ = fs.WalkDir(loadUI().fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || p == "index.html" {
			return err
		}
		want := ""
		switch {
		case strings.HasSuffix(p, ".js"):
			want = "text/javascript; charset=utf-8"
		case strings.HasSuffix(p, ".css"):
			want = "text/css; charset=utf-8"
		}
		check("/"+p, 200, want)
		return nil
	})
	for _, p := range []string{"/nope.js", "/pages/", "/pages", "/vendor/", "/ui/lib.js", "/.hidden"} {
		check(p, 404, "")
	}
	if resp, _ := loginDo(t, nil, "GET", s.hs.URL+"/index.html", "", nil); resp.Request.URL.Path != "/" {
		t.Errorf("/index.html ended at %s", resp.Request.URL.Path)
	}
	if resp, _ := loginDo(t, nil, "POST", s.hs.URL+"/", "", nil); resp.StatusCode != 405 {
		t.Errorf("POST /: %d", resp.StatusCode)
	}
	// The UI is not the API: no data without a login.
	if resp, _ := loginDo(t, nil, "GET", s.hs.URL+"/api/v1/history", "", nil); resp.StatusCode != 401 {
		t.Errorf("/api/v1/history without login: %d", resp.StatusCode)
	}
}
