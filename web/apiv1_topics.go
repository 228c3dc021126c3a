package web

import (
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"
)

// v1Topics answers GET /api/v1/topics?prefix=P&cursor&limit: the level of
// the subscription tree below P ("" for the root), one node per distinct
// next level, in name order; the cursor is a level name.
func (s *Server) v1Topics(w http.ResponseWriter, r *http.Request) {
	p, ok := parseList(w, r)
	if !ok {
		return
	}
	prefix := r.URL.Query().Get("prefix")
	switch {
	case len(prefix) > maxV1Cursor:
		apiError(w, http.StatusBadRequest, fmt.Sprintf("prefix longer than %d bytes", maxV1Cursor))
		return
	case !utf8.ValidString(prefix) || strings.IndexByte(prefix, 0) >= 0:
		apiError(w, http.StatusBadRequest, "prefix must be UTF-8 without NUL")
		return
	}
	nodes, next := s.router.TopicTree(prefix, p.cursor, p.limit)
	items := make([]TopicNode, len(nodes))
	for i, n := range nodes {
		items[i] = TopicNode{Path: n.Path, Subscriptions: n.Subscriptions, Total: n.Total, Children: n.Children}
	}
	apiJSON(w, page(items, next))
}

// v1Shares answers GET /api/v1/shares?limit&cursor&q: MQTT shared
// subscription groups in (group, filter) order.
func (s *Server) v1Shares(w http.ResponseWriter, r *http.Request) {
	p, ok := parseList(w, r)
	if !ok {
		return
	}
	groups, next := s.router.ShareGroupPage(p.cursor, p.limit, p.q)
	items := make([]ShareGroup, len(groups))
	for i, g := range groups {
		items[i] = ShareGroup{Group: g.Group, Filter: g.Filter, Members: g.Members}
	}
	apiJSON(w, page(items, next))
}
