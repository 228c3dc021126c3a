package broker

import (
	"container/heap"
	"sort"
)

// MaxPage bounds the limit of SessionPage and QueuePage.
const MaxPage = 1000

// MaxSessionPage is MaxPage (the name SessionPage documented first).
const MaxSessionPage = MaxPage

// pager collects one page of a listing in key order: it keeps the limit+1
// smallest keys after cursor that it is offered, in a bounded max-heap, so
// a page costs O(n log limit) time and O(limit) memory whatever the size
// of the table it walks (the table is never copied or sorted whole).
type pager[T any] struct {
	cursor string
	limit  int
	h      pagerHeap[T]
}

func newPager[T any](cursor string, limit int, key func(T) string) *pager[T] {
	limit = max(1, min(limit, MaxPage))
	return &pager[T]{cursor: cursor, limit: limit, h: pagerHeap[T]{key: key, items: make([]T, 0, limit+1)}}
}

// wants reports whether an item with key k could be on the page; callers
// check it before their own (costlier) filter.
func (p *pager[T]) wants(k string) bool {
	if k <= p.cursor {
		return false
	}
	return len(p.h.items) <= p.limit || k < p.h.key(p.h.items[0])
}

// worst returns the item a new one must sort before to enter the page,
// once there are limit+1 of them (full); callers that can compare items
// without their keys skip making a key with it.
func (p *pager[T]) worst() (v T, full bool) {
	if len(p.h.items) <= p.limit {
		return v, false
	}
	return p.h.items[0], true
}

// add offers v, whose key the caller checked with wants.
func (p *pager[T]) add(v T) {
	heap.Push(&p.h, v)
	if len(p.h.items) > p.limit+1 {
		heap.Pop(&p.h)
	}
}

// page returns the items in key order and the next page's cursor ("" on
// the last page).
func (p *pager[T]) page() (items []T, next string) {
	items, key := p.h.items, p.h.key
	sort.Slice(items, func(i, j int) bool { return key(items[i]) < key(items[j]) })
	if len(items) > p.limit {
		items = items[:p.limit]
		next = key(items[p.limit-1])
	}
	return items, next
}

// pagerHeap is a max-heap by key.
type pagerHeap[T any] struct {
	items []T
	key   func(T) string
}

func (h pagerHeap[T]) Len() int           { return len(h.items) }
func (h pagerHeap[T]) Less(i, j int) bool { return h.key(h.items[i]) > h.key(h.items[j]) }
func (h pagerHeap[T]) Swap(i, j int)      { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *pagerHeap[T]) Push(x any)        { h.items = append(h.items, x.(T)) }
func (h *pagerHeap[T]) Pop() any {
	var zero T
	v := h.items[len(h.items)-1]
	h.items[len(h.items)-1] = zero
	h.items = h.items[:len(h.items)-1]
	return v
}
