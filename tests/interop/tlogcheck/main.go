// tlogcheck: an independent check of credit-audit's Merkle log with Go's
// own implementation (golang.org/x/mod/sumdb/note and sumdb/tlog, as
// Debian ships them in golang-golang-x-mod-dev), built offline:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode GOPROXY=off go build
//
// Usage:
//
//	tlogcheck entries VKEY FILE      checkpoint, every entry's inclusion
//	                                 (proof --rid or statement JSON), and
//	                                 the statement's signed summary if any
//	tlogcheck consistency VKEY FILE  proof --consistency JSON
//
// Exit 0 when everything verifies, 1 on the first failure (said on
// stderr), 2 on a usage error.
package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// An entry's proof: base64 hashes (proof --rid), or indexes into the
// document's "nodes" (a statement: each distinct node once).
type entry struct {
	Ord   int64         `json:"ord"`
	Raw   string        `json:"raw"`
	Proof []interface{} `json:"proof"`
}

type doc struct {
	Log struct {
		Checkpoint string `json:"checkpoint"`
	} `json:"log"`
	Signed  string   `json:"signed"`
	Nodes   []string `json:"nodes"`
	Entries []entry  `json:"entries"`
	Old     struct {
		TreeSize int64  `json:"tree_size"`
		Root     string `json:"root"`
	} `json:"old"`
	New struct {
		TreeSize   int64  `json:"tree_size"`
		Root       string `json:"root"`
		Checkpoint string `json:"checkpoint"`
	} `json:"new"`
	Proof []string `json:"proof"`
}

func die(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "tlogcheck: "+format+"\n", a...)
	os.Exit(1)
}

func hash(s string) tlog.Hash {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != tlog.HashSize {
		die("bad hash %q", s)
	}
	var h tlog.Hash
	copy(h[:], b)
	return h
}

func hashes(list []string) []tlog.Hash {
	out := make([]tlog.Hash, len(list))
	for i, s := range list {
		out[i] = hash(s)
	}
	return out
}

// path resolves an entry's proof: each element a hash, or the index of
// one in the node table.
func path(d *doc, e entry) []tlog.Hash {
	out := make([]tlog.Hash, len(e.Proof))
	for i, p := range e.Proof {
		switch v := p.(type) {
		case string:
			out[i] = hash(v)
		case float64:
			k := int(v)
			if float64(k) != v || k < 0 || k >= len(d.Nodes) {
				die("entry %d: proof node %v is not in the node table", e.Ord, v)
			}
			out[i] = hash(d.Nodes[k])
		default:
			die("entry %d: a proof element is neither a hash nor an index", e.Ord)
		}
	}
	return out
}

// checkpoint opens a C2SP checkpoint note with the verifier key: its
// tree size and root.
func checkpoint(v note.Verifier, text string) (int64, tlog.Hash) {
	n, err := note.Open([]byte(text), note.VerifierList(v))
	if err != nil {
		die("checkpoint: %v", err)
	}
	lines := strings.SplitN(n.Text, "\n", 4)
	if len(lines) < 4 || lines[0] != v.Name() {
		die("checkpoint: not a checkpoint of %s", v.Name())
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || strconv.FormatInt(size, 10) != lines[1] {
		die("checkpoint: bad tree size %q", lines[1])
	}
	return size, hash(lines[2])
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: tlogcheck entries|consistency VKEY FILE")
		os.Exit(2)
	}
	v, err := note.NewVerifier(os.Args[2])
	if err != nil {
		fmt.Fprintf(os.Stderr, "tlogcheck: verifier key: %v\n", err)
		os.Exit(2)
	}
	data, err := os.ReadFile(os.Args[3])
	if err != nil {
		fmt.Fprintf(os.Stderr, "tlogcheck: %v\n", err)
		os.Exit(2)
	}
	var d doc
	if err := json.Unmarshal(data, &d); err != nil {
		die("%s: %v", os.Args[3], err)
	}
	switch os.Args[1] {
	case "entries":
		size, root := checkpoint(v, d.Log.Checkpoint)
		for _, e := range d.Entries {
			raw, err := base64.StdEncoding.DecodeString(e.Raw)
			if err != nil {
				die("entry %d: %v", e.Ord, err)
			}
			err = tlog.CheckRecord(path(&d, e), size, root, e.Ord,
				tlog.RecordHash(raw))
			if err != nil {
				die("entry %d: %v", e.Ord, err)
			}
		}
		if d.Signed != "" {
			if _, err := note.Open([]byte(d.Signed), note.VerifierList(v)); err != nil {
				die("statement signature: %v", err)
			}
		}
		fmt.Printf("OK: checkpoint %s at %d, %d entries included\n",
			v.Name(), size, len(d.Entries))
	case "consistency":
		size, root := checkpoint(v, d.New.Checkpoint)
		if size != d.New.TreeSize || root != hash(d.New.Root) {
			die("the proof's new tree is not its checkpoint's")
		}
		err := tlog.CheckTree(hashes(d.Proof), size, root, d.Old.TreeSize,
			hash(d.Old.Root))
		if err != nil {
			die("consistency %d -> %d: %v", d.Old.TreeSize, size, err)
		}
		fmt.Printf("OK: tree %d extends tree %d\n", size, d.Old.TreeSize)
	default:
		fmt.Fprintln(os.Stderr, "usage: tlogcheck entries|consistency VKEY FILE")
		os.Exit(2)
	}
}
