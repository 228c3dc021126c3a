package web

import (
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"
)

// The admin UI (web/ui) is embedded in the binary: static files only, no
// data, so they are served without a login; everything they show comes
// from /api/v1 behind adminGate.
//
//go:embed ui
var uiFiles embed.FS

// uiCSP is the UI's Content-Security-Policy: its own scripts, styles and
// API only; no inline scripts or style attributes (the UI and uPlot set
// styles through CSSOM, which the policy allows).
const uiCSP = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"connect-src 'self'; img-src 'self' data:; font-src 'self'; object-src 'none'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// uiTypes are the Content-Types of the UI's files, set here rather than
// from the system's MIME tables (ES modules must be text/javascript).
var uiTypes = map[string]string{
	".html":  "text/html; charset=utf-8",
	".js":    "text/javascript; charset=utf-8",
	".mjs":   "text/javascript; charset=utf-8",
	".css":   "text/css; charset=utf-8",
	".json":  "application/json",
	".map":   "application/json",
	".svg":   "image/svg+xml",
	".png":   "image/png",
	".ico":   "image/x-icon",
	".woff2": "font/woff2",
	".txt":   "text/plain; charset=utf-8",
}

// uiAssets is the embedded file tree and each file's ETag.
type uiAssets struct {
	fsys  fs.FS
	etags map[string]string // "index.html" -> `"base64(sha256)"`
}

var (
	uiOnce sync.Once
	uiTree uiAssets
)

func loadUI() uiAssets {
	uiOnce.Do(func() {
		sub, err := fs.Sub(uiFiles, "ui")
		if err != nil {
			panic(err) // the embed pattern guarantees the directory
		}
		uiTree = uiAssets{fsys: sub, etags: make(map[string]string)}
		_ = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := fs.ReadFile(sub, p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			uiTree.etags[p] = `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`
			return nil
		})
	})
	return uiTree
}

// uiHandler serves the embedded admin UI: "/" is index.html, other paths
// name files under web/ui; directories and unknown paths are 404. Every
// answer carries the UI's security headers; files are revalidated with
// their ETag (Cache-Control: no-cache), so a new binary's UI shows at
// once.
func (s *Server) uiHandler() http.Handler {
	ui := loadUI()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", uiCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "Duplex: method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
		if name == "" {
			name = "index.html"
		} else if strings.HasSuffix(r.URL.Path, "/") {
			// No directory listings. (/index.html redirects to /.)
			http.NotFound(w, r)
			return
		}
		etag, ok := ui.etags[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if t, ok := uiTypes[path.Ext(name)]; ok {
			h.Set("Content-Type", t)
		}
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", etag)
		http.ServeFileFS(w, r, ui.fsys, name)
	})
}
