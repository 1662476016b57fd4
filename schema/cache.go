package schema

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"sync"

	"cuelang.org/go/cue/cuecontext"

	"berth.dev/berth/reconcile"
)

// Cache keeps validation results between calls of Load, keyed by file
// content, so that a new revision costs only the files it changed and the
// same revision twice costs no validation at all. A YAML or JSON file is
// keyed by its name and bytes; a CUE package by the bytes of its files, of
// the packages it imports and of the files it embeds, and by the node (its
// tags). The cache holds the entries of the last Load only, so its size
// follows the repository.
//
// A Cache is safe for concurrent use. The objects of a cached Result are
// shared between calls and must not be modified.
type Cache struct {
	mu      sync.Mutex
	entries map[key]*cacheEntry
	used    map[key]*cacheEntry
	// objects are the valid objects of CUE packages by content and place.
	objects, usedObjects map[key]cachedObject
	// onDisk are the keys of the entries the file of ReadFile or
	// WriteFile holds.
	onDisk  map[key]bool
	last    key
	lastRes *Result
	lastErr error
	hasLast bool
	stats   CacheStats
}

// CacheStats counts what a Cache saved.
type CacheStats struct {
	// Hits and Misses count files and CUE packages.
	Hits, Misses int
	// Revisions counts calls of Load answered without looking at any file
	// because the revision was the same as the last one.
	Revisions int
	// Objects counts objects of re-evaluated CUE packages that were not
	// validated again because they had not changed.
	Objects int
}

// NewCache returns an empty cache.
func NewCache() *Cache {
	return &Cache{entries: map[key]*cacheEntry{}, used: map[key]*cacheEntry{},
		objects: map[key]cachedObject{}, usedObjects: map[key]cachedObject{}}
}

// Stats returns what the cache saved so far.
func (c *Cache) Stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

type key [sha256.Size]byte

// cachedObject is a valid object of a CUE package and its facts.
type cachedObject struct {
	Obj   reconcile.Object
	Facts facts
}

type cacheEntry struct {
	loaded []loaded
	diags  []Diagnostic
	// disk says the entry may be kept on disk: it loaded no Secret and
	// no decrypted file.
	disk bool
	// raw is the entry's encoding on disk, once known; empty if it does
	// not read back exactly.
	raw []byte
}

func (c *Cache) get(k key) (*cacheEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok {
		e, ok = c.used[k]
	}
	if ok {
		c.used[k] = e
		c.stats.Hits++
	} else {
		c.stats.Misses++
	}
	return e, ok
}

func (c *Cache) put(k key, e *cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.used[k] = e
}

// objectKeys returns the keys of the CUE objects the cache holds.
func (c *Cache) objectKeys() map[key]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make(map[key]bool, len(c.objects)+len(c.usedObjects))
	for k := range c.objects {
		keys[k] = true
	}
	for k := range c.usedObjects {
		keys[k] = true
	}
	return keys
}

// resolve fills in the objects of ls that refer to cached ones and records
// the new valid ones. It returns false if a referred object is gone.
func (c *Cache) resolve(ls []loaded) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range ls {
		lo := &ls[i]
		switch {
		case lo.Ref != key{}:
			obj, ok := c.usedObjects[lo.Ref]
			if !ok {
				obj, ok = c.objects[lo.Ref]
			}
			if !ok {
				return false
			}
			c.usedObjects[lo.Ref] = obj
			c.stats.Objects++
			lo.Obj, lo.Facts, lo.Key, lo.Ref = obj.Obj, obj.Facts, lo.Ref, key{}
		case lo.Key != key{}:
			c.usedObjects[lo.Key] = cachedObject{Obj: lo.Obj, Facts: lo.Facts}
		}
	}
	return true
}

// revision returns the result of the last Load if rev is the same
// revision.
func (c *Cache) revision(rev key) (*Result, error, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hasLast && c.last == rev {
		c.stats.Revisions++
		return c.lastRes, c.lastErr, true
	}
	return nil, nil, false
}

// finish ends a Load: the entries it used become the cache.
func (c *Cache) finish(rev key, res *Result, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries, c.used = c.used, map[key]*cacheEntry{}
	c.objects, c.usedObjects = c.usedObjects, map[key]cachedObject{}
	c.last, c.lastRes, c.lastErr, c.hasLast = rev, res, err, true
}

// schemaKey changes whenever the embedded schema does, so cached results
// never outlive the schema that produced them.
var schemaKey = sync.OnceValue(func() []byte {
	h := sha256.New()
	files := SchemaFiles()
	for _, n := range slices.Sorted(maps.Keys(files)) {
		writeField(h, n)
		h.Write(files[n])
	}
	return h.Sum(nil)
})

// writeField writes s with its length, so that concatenations cannot
// collide.
func writeField(h hash.Hash, s string) {
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
	h.Write(n[:])
	h.Write([]byte(s))
}

// newKeyHash starts a key for the given options.
func (l *loader) newKeyHash(kind string) hash.Hash {
	h := sha256.New()
	h.Write(schemaKey())
	writeField(h, kind)
	writeField(h, strconv.FormatBool(l.opts.Strict))
	writeField(h, strconv.FormatInt(l.opts.MaxFileSize, 10)+"/"+strconv.Itoa(l.opts.MaxDocuments)+"/"+strconv.Itoa(int(l.opts.MaxReplicas))+"/"+strconv.Itoa(l.opts.MaxPods))
	return h
}

func sum(h hash.Hash) key {
	var k key
	copy(k[:], h.Sum(nil))
	return k
}

// nodeKey writes the node's name and labels into h.
func nodeKey(h hash.Hash, n reconcile.Node) {
	writeField(h, n.Name)
	for _, k := range slices.Sorted(maps.Keys(n.Labels)) {
		writeField(h, k)
		writeField(h, n.Labels[k])
	}
}

// revisionKey identifies everything Load reads: every file's name and
// content (CUE packages through their keys, which cover embedded files),
// the node and the options. Problems found while walking (an unreadable
// file, a link leaving the repository) are part of it.
func (l *loader) revisionKey() key {
	h := l.newKeyHash("revision")
	nodeKey(h, l.opts.Node)
	for _, f := range l.dataFiles {
		writeField(h, f.name)
		writeField(h, string(f.data))
	}
	for _, dir := range l.cueOrder {
		for _, f := range l.cueDirs[dir] {
			writeField(h, f.name)
			writeField(h, string(f.data))
		}
	}
	for _, d := range l.diags {
		writeField(h, d.String())
	}
	for _, j := range l.jobs {
		h.Write(j.key[:])
	}
	return sum(h)
}

// ensureCUE makes the CUE context and compiles the schema, once.
func (l *loader) ensureCUE() {
	if l.ctx != nil {
		return
	}
	l.ctx = cuecontext.New()
	sch, err := compileSchema(l.ctx)
	if err != nil {
		panic("embedded schema: " + err.Error())
	}
	l.schema = sch
}

// loadDataFiles loads the YAML and JSON files, on as many CPUs as the
// process may use: each worker has its own CUE context (a context is not
// safe for concurrent use), and the results are merged in file order.
func (l *loader) loadDataFiles() {
	workers := min(runtime.GOMAXPROCS(0), len(l.dataFiles)/8)
	if workers <= 1 {
		for _, f := range l.dataFiles {
			l.loadDataCached(f)
		}
		return
	}
	type part struct {
		loaded []loaded
		diags  []Diagnostic
	}
	parts := make([]part, len(l.dataFiles))
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &loader{fsys: l.fsys, opts: l.opts}
			for i := range next {
				w.loaded, w.diags = nil, nil
				w.loadDataCached(l.dataFiles[i])
				parts[i] = part{w.loaded, w.diags}
			}
		}()
	}
	for i := range l.dataFiles {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, p := range parts {
		l.loaded = append(l.loaded, p.loaded...)
		l.diags = append(l.diags, p.diags...)
	}
}

// loadDataCached loads a YAML or JSON file, or takes its result from the
// cache.
func (l *loader) loadDataCached(f cueFile) {
	var k key
	if l.opts.Cache != nil {
		h := l.newKeyHash("data")
		writeField(h, f.name)
		writeField(h, string(f.data))
		k = sum(h)
		if e, ok := l.opts.Cache.get(k); ok {
			l.loaded = append(l.loaded, e.loaded...)
			l.diags = append(l.diags, e.diags...)
			return
		}
	}
	l.ensureCUE()
	n0, d0 := len(l.loaded), len(l.diags)
	l.loadData(f)
	if l.opts.Cache != nil {
		e := &cacheEntry{
			loaded: slices.Clone(l.loaded[n0:]),
			diags:  slices.Clone(l.diags[d0:]),
		}
		e.disk = !f.decrypted && !holdsSecret(e.loaded)
		l.opts.Cache.put(k, e)
	}
}
