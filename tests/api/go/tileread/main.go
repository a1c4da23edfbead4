// Command tileread is an independent client of uchast's C2SP tiled log, built only on Go's
// golang.org/x/mod/sumdb/tlog and note (the Go checksum database's own tile client code).
//
// It verifies the checkpoint with the log's vkey, reads hash tiles through tlog.TileHashReader
// (which authenticates every tile against the checkpoint's tree hash), and checks, for the
// sampled indexes and sizes, that:
//
//   - tlog.TreeHash at the checkpoint size is the checkpoint's root;
//   - tlog.ProveRecord gives the hashes /log/proof/inclusion serves, and tlog.CheckRecord
//     accepts the record hash of the entry read from the entry bundles;
//   - tlog.ProveTree gives the hashes /log/proof/consistency serves, and tlog.CheckTree
//     accepts them.
//
// Usage: tileread -log URL/v1/elections/ID/log/ -vkey VKEY [-sample N]
// Prints "ok SIZE RECORDS TREES" and exits 0, or prints what disagrees and exits 1.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const height = 8

var prefix string

func get(path string) ([]byte, error) {
	resp, err := http.Get(prefix + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d", path, resp.StatusCode)
	}
	return body, nil
}

// tiles maps Go's tile paths (tile/8/L/N[.p/W]) to C2SP's (tile/L/N[.p/W]): the height is
// fixed at 8 and not part of the path.
type tiles struct {
	mu    sync.Mutex
	cache map[string][]byte
	reads int
}

func (t *tiles) Height() int { return height }

func (t *tiles) ReadTiles(list []tlog.Tile) ([][]byte, error) {
	data := make([][]byte, len(list))
	for i, tile := range list {
		goPath := tile.Path()
		path := "tile/" + strings.TrimPrefix(goPath, fmt.Sprintf("tile/%d/", height))
		t.mu.Lock()
		cached, ok := t.cache[path]
		t.mu.Unlock()
		if !ok {
			body, err := get(path)
			if err != nil {
				return nil, err
			}
			t.mu.Lock()
			t.cache[path] = body
			t.reads++
			t.mu.Unlock()
			cached = body
		}
		data[i] = cached
	}
	return data, nil
}

func (t *tiles) SaveTiles([]tlog.Tile, [][]byte) {}

func fail(format string, args ...interface{}) {
	fmt.Printf(format+"\n", args...)
	os.Exit(1)
}

func hashes(path string) []tlog.Hash {
	body, err := get(path)
	if err != nil {
		fail("%v", err)
	}
	var answer struct {
		Hashes []string `json:"hashes"`
	}
	if err := json.Unmarshal(body, &answer); err != nil {
		fail("%s: %v", path, err)
	}
	out := make([]tlog.Hash, len(answer.Hashes))
	for i, h := range answer.Hashes {
		raw, err := base64.StdEncoding.DecodeString(h)
		if err != nil || len(raw) != tlog.HashSize {
			fail("%s: bad hash %q", path, h)
		}
		copy(out[i][:], raw)
	}
	return out
}

func same(a, b []tlog.Hash) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// bundlePath is the C2SP entry bundle path of bundle n with w entries.
func bundlePath(n int64, w int64) string {
	t := tlog.Tile{H: height, L: 0, N: n, W: int(w)}
	return "tile/entries/" + strings.TrimPrefix(t.Path(), fmt.Sprintf("tile/%d/0/", height))
}

func entries(size int64) [][]byte {
	var all [][]byte
	for n := int64(0); n*256 < size; n++ {
		w := size - n*256
		if w > 256 {
			w = 256
		}
		body, err := get(bundlePath(n, w))
		if err != nil {
			fail("%v", err)
		}
		for len(body) > 0 {
			if len(body) < 2 {
				fail("bundle %d: a length prefix is cut off", n)
			}
			length := int(binary.BigEndian.Uint16(body))
			if len(body) < 2+length {
				fail("bundle %d: an entry is cut off", n)
			}
			all = append(all, body[2:2+length])
			body = body[2+length:]
		}
		if int64(len(all)) != n*256+w {
			fail("bundle %d holds %d entries, want %d", n, int64(len(all))-n*256, w)
		}
	}
	return all
}

func sample(size int64, count int64) []int64 {
	if count <= 0 || count >= size {
		out := make([]int64, size)
		for i := range out {
			out[i] = int64(i)
		}
		return out
	}
	seen := map[int64]bool{}
	var out []int64
	for _, i := range []int64{0, 1, 255, 256, 257, 65535, 65536, size - 2, size - 1} {
		if i >= 0 && i < size && !seen[i] {
			seen[i] = true
			out = append(out, i)
		}
	}
	for k := int64(0); k < count; k++ {
		i := k * size / count
		if !seen[i] {
			seen[i] = true
			out = append(out, i)
		}
	}
	return out
}

func main() {
	logURL := flag.String("log", "", "the log's tiles prefix, .../v1/elections/ID/log/")
	vkey := flag.String("vkey", "", "the log's verifier key")
	count := flag.Int64("sample", 0, "indexes and sizes to check (0: every one)")
	flag.Parse()
	prefix = strings.TrimSuffix(*logURL, "/") + "/"

	verifier, err := note.NewVerifier(*vkey)
	if err != nil {
		fail("vkey: %v", err)
	}
	text, err := get("checkpoint")
	if err != nil {
		fail("%v", err)
	}
	signed, err := note.Open(text, note.VerifierList(verifier))
	if err != nil {
		fail("checkpoint: %v", err)
	}
	lines := strings.Split(signed.Text, "\n")
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		fail("checkpoint size: %v", err)
	}
	rootBytes, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(rootBytes) != tlog.HashSize {
		fail("checkpoint root: %q", lines[2])
	}
	var root tlog.Hash
	copy(root[:], rootBytes)

	reader := &tiles{cache: map[string][]byte{}}
	tree := tlog.Tree{N: size, Hash: root}
	hr := tlog.TileHashReader(tree, reader)
	th, err := tlog.TreeHash(size, hr)
	if err != nil {
		fail("TreeHash: %v", err)
	}
	if th != root {
		fail("tree hash %v from tiles, checkpoint root %v", th, root)
	}

	records := entries(size)
	indexes := sample(size, *count)
	for _, i := range indexes {
		proof, err := tlog.ProveRecord(size, i, hr)
		if err != nil {
			fail("ProveRecord(%d, %d): %v", size, i, err)
		}
		served := hashes(fmt.Sprintf("proof/inclusion?index=%d&size=%d", i, size))
		if !same(proof, served) {
			fail("inclusion proof of %d in %d: tiles give %v, the API serves %v", i, size, proof, served)
		}
		if err := tlog.CheckRecord(proof, size, root, i, tlog.RecordHash(records[i])); err != nil {
			fail("CheckRecord(%d): %v", i, err)
		}
	}
	trees := 0
	for _, i := range indexes {
		old := i + 1
		proof, err := tlog.ProveTree(size, old, hr)
		if err != nil {
			fail("ProveTree(%d, %d): %v", size, old, err)
		}
		served := hashes(fmt.Sprintf("proof/consistency?old=%d&new=%d", old, size))
		if !same(proof, served) {
			fail("consistency proof %d to %d: tiles give %v, the API serves %v", old, size, proof, served)
		}
		oldHash, err := tlog.TreeHash(old, hr)
		if err != nil {
			fail("TreeHash(%d): %v", old, err)
		}
		if err := tlog.CheckTree(proof, size, root, old, oldHash); err != nil {
			fail("CheckTree(%d, %d): %v", size, old, err)
		}
		trees++
	}
	if !bytes.HasPrefix(text, []byte(signed.Text)) {
		fail("the note text is not the start of the checkpoint")
	}
	fmt.Printf("ok %d %d %d tiles-read=%d\n", size, len(indexes), trees, reader.reads)
}
