package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// MaxFileSize bounds the size of a rules file, in bytes.
const MaxFileSize = 4 << 20

// maxDepth bounds the nesting of YAML collections. The schema needs four
// levels (root, section, entry, list); the parser's own bound is 10,000.
const maxDepth = 16

const nullTag = "!!null"

// decode parses data as a single YAML document and returns its root node,
// or nil when the file is empty or has errors, which it records.
func (l *loader) decode(data []byte) *yaml.Node {
	if len(data) > MaxFileSize {
		l.errorf(lineAt(data, MaxFileSize), "", "the file is larger than %d bytes", MaxFileSize)
		return nil
	}
	if off, msg := badChar(data); msg != "" {
		l.errorf(lineAt(data, off), "", "%s", msg)
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := safeDecode(dec, &doc); err != nil {
		if !errors.Is(err, io.EOF) {
			l.syntaxError(data, err)
		}
		return nil
	}
	var next yaml.Node
	switch err := safeDecode(dec, &next); {
	case err == nil:
		l.errorf(next.Line, "", "the file holds more than one YAML document (a second \"---\")")
		return nil
	case !errors.Is(err, io.EOF):
		l.syntaxError(data, err)
		return nil
	}
	if len(doc.Content) == 0 {
		return nil
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.ShortTag() == nullTag && root.Value == "" && root.Style&yaml.TaggedStyle == 0 {
		return nil // a bare "---": empty, unlike a written null or ~
	}
	return root
}

// safeDecode decodes one document. The parser reports malformed input as
// errors, but it still has a few "internal error" panics (none was reached
// by FuzzParse); a rules file must never crash a running proxy on reload,
// so a panic becomes an error too.
func safeDecode(dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: the parser failed: %v", r)
		}
	}()
	return dec.Decode(n)
}

// syntaxError records a parser error, "yaml: line N: msg", at its line,
// or a tab in the indentation of data at that line as such.
func (l *loader) syntaxError(data []byte, err error) {
	msg, _ := strings.CutPrefix(err.Error(), "yaml: ")
	line, hasLine := 1, false
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, tail, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil {
				line, msg, hasLine = n, tail, true
			}
		}
	}
	if hasLine && parserProblem(msg) {
		// yaml.v3 adds one to the 0-based line of scanner errors only (and
		// leaves out line 0, so the default of 1 stands).
		line++
	}
	if tab := tabIndent(data, line, msg); tab > 0 {
		l.errorf(tab, "", "tabs are not allowed for indentation; indent with spaces")
		return
	}
	l.errorf(line, "", "YAML syntax error: %s", msg)
}

// parserProblem reports whether msg is one of the errors of yaml.v3's parser
// (parserc.go), as opposed to its scanner.
func parserProblem(msg string) bool {
	switch msg {
	case "did not find expected <stream-start>", "did not find expected <document start>",
		"found undefined tag handle", "did not find expected node content",
		"did not find expected '-' indicator", "did not find expected key",
		"did not find expected ',' or ']'", "did not find expected ',' or '}'",
		"found duplicate %YAML directive", "found incompatible YAML document",
		"found duplicate %TAG directive":
		return true
	}
	return false
}

// badChar finds the first byte that YAML does not allow (invalid UTF-8 or a
// control character), which the parser would report without a line.
func badChar(data []byte) (int, string) {
	for off := 0; off < len(data); {
		r, size := utf8.DecodeRune(data[off:])
		switch {
		case r == utf8.RuneError && size <= 1:
			return off, "the file is not valid UTF-8"
		case r == '\t', r == '\n', r == '\r', r == 0x85,
			0x20 <= r && r <= 0x7e, 0xa0 <= r && r <= 0xd7ff,
			0xe000 <= r && r <= 0xfffd, 0x10000 <= r:
		default:
			return off, fmt.Sprintf("character %U is not allowed in YAML", r)
		}
		off += size
	}
	return 0, ""
}

// lineAt returns the line of byte offset off, counting line breaks as YAML
// does (LF, CR, CRLF, NEL, LS and PS).
func lineAt(data []byte, off int) int { return countLines(data[:off]) }

// countLines returns the number of lines in data as YAML counts them.
func countLines(data []byte) int {
	n := 1
	for i := 0; i < len(data); i++ {
		switch {
		case data[i] == '\n':
			n++
		case data[i] == '\r' && (i+1 == len(data) || data[i+1] != '\n'):
			n++
		case data[i] == 0xc2 && i+1 < len(data) && data[i+1] == 0x85:
			n++
		case data[i] == 0xe2 && i+2 < len(data) && data[i+1] == 0x80 && (data[i+2] == 0xa8 || data[i+2] == 0xa9):
			n++
		}
	}
	return n
}

// scan reports, anywhere in the tree, what the schema walk does not look
// for: anchors and aliases, explicit tags, and nesting beyond maxDepth. Each
// of the first three is reported at its first use only, to keep an alias
// bomb from burying the other errors. Aliases are refused rather than
// expanded: a few lines of them can expand into billions of nodes (the
// "billion laughs").
func (l *loader) scan(root *yaml.Node) bool {
	type item struct {
		n     *yaml.Node
		field string
		depth int
	}
	var aliases, anchors, tags int
	stack := []item{{root, "", 1}}
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		n := it.n
		if it.depth > maxDepth {
			l.errorf(n.Line, it.field, "nested deeper than %d levels", maxDepth)
			return false
		}
		switch {
		case n.Kind == yaml.AliasNode:
			if aliases++; aliases == 1 {
				l.errorf(n.Line, it.field, "YAML aliases are not supported (they can expand a small file into a huge one)")
			}
		case n.Anchor != "":
			if anchors++; anchors == 1 {
				l.errorf(n.Line, it.field, "YAML anchors are not supported (aliases to them can expand a small file into a huge one)")
			}
		case n.Style&yaml.TaggedStyle != 0:
			if tags++; tags == 1 {
				l.errorf(n.Line, it.field, "explicit YAML tags such as %q are not supported", n.Tag)
			}
		}
		// Push children last first, so that they are visited in file order.
		if n.Kind == yaml.MappingNode {
			for i := len(n.Content) - 2; i >= 0; i -= 2 {
				k := n.Content[i]
				stack = append(stack, item{n.Content[i+1], join(it.field, k.Value), it.depth + 1}, item{k, it.field, it.depth + 1})
			}
			continue
		}
		for i := len(n.Content) - 1; i >= 0; i-- {
			stack = append(stack, item{n.Content[i], index(it.field, i), it.depth + 1})
		}
	}
	return true
}

// pair is one key and its value in a YAML mapping.
type pair struct {
	key   string
	k, v  *yaml.Node
	field string // the value's dotted path
}

// mapping returns the pairs of the mapping n in file order. It reports keys
// that are not strings, and duplicate keys: yaml.v3 checks those only when
// decoding into Go values, not into nodes.
func (l *loader) mapping(n *yaml.Node, field string) ([]pair, bool) {
	if !l.kind(n, field, yaml.MappingNode) {
		return nil, false
	}
	first := make(map[string]int, len(n.Content)/2)
	out := make([]pair, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.AliasNode {
			continue // reported by scan
		}
		if k.Kind != yaml.ScalarNode || k.ShortTag() == nullTag {
			l.errorf(k.Line, field, "keys must be strings, got %s", describe(k))
			continue
		}
		f := join(field, k.Value)
		if line, dup := first[k.Value]; dup {
			l.errorf(k.Line, f, "duplicate key (first at line %d)", line)
			continue
		}
		first[k.Value] = k.Line
		out = append(out, pair{key: k.Value, k: k, v: v, field: f})
	}
	return out, true
}

// fields returns the pairs of the mapping n by key, reporting keys that are
// not among known.
func (l *loader) fields(n *yaml.Node, field string, known ...string) (map[string]pair, bool) {
	pairs, ok := l.mapping(n, field)
	if !ok {
		return nil, false
	}
	out := make(map[string]pair, len(pairs))
	for _, p := range pairs {
		if !slices.Contains(known, p.key) {
			l.errorf(p.k.Line, p.field, "unknown field (want one of %s)", strings.Join(known, ", "))
			continue
		}
		out[p.key] = p
	}
	return out, true
}

// kind reports whether n is a node of kind want, and not null, recording an
// error otherwise.
func (l *loader) kind(n *yaml.Node, field string, want yaml.Kind) bool {
	if n.Kind == want && n.ShortTag() != nullTag {
		return true
	}
	if n.Kind != yaml.AliasNode { // reported by scan
		l.errorf(n.Line, field, "must be %s, got %s", kindName(want), describe(n))
	}
	return false
}

// str returns the text of the scalar p.v. Numbers, booleans and dates are
// taken as written: "8080" is the string 8080.
func (l *loader) str(p pair) (string, bool) {
	if !l.kind(p.v, p.field, yaml.ScalarNode) {
		return "", false
	}
	return p.v.Value, true
}

// boolean returns the value of p.v, which must be an unquoted true or false.
func (l *loader) boolean(p pair) (bool, bool) {
	if !l.kind(p.v, p.field, yaml.ScalarNode) {
		return false, false
	}
	if p.v.ShortTag() == "!!bool" {
		switch p.v.Value {
		case "true":
			return true, true
		case "false":
			return false, true
		}
	}
	l.errorf(p.v.Line, p.field, "must be true or false, got %s", brief(p.v.Value))
	return false, false
}

// list returns the items of the sequence p.v, each as a pair whose field is
// "FIELD[i]".
func (l *loader) list(p pair) ([]pair, bool) {
	if !l.kind(p.v, p.field, yaml.SequenceNode) {
		return nil, false
	}
	out := make([]pair, len(p.v.Content))
	for i, n := range p.v.Content {
		out[i] = pair{k: n, v: n, field: index(p.field, i)}
	}
	return out, true
}

// parseList parses every string item of the list p.v with parse, which also
// returns the key that makes two items duplicates of each other.
func parseList[T any](l *loader, p pair, parse func(string) (T, string, error)) ([]T, bool) {
	items, ok := l.list(p)
	if !ok {
		return nil, false
	}
	out := make([]T, 0, len(items))
	seen := make(map[string]string, len(items))
	for _, it := range items {
		s, ok := l.str(it)
		if !ok {
			continue
		}
		v, key, err := parse(s)
		if err != nil {
			l.errorf(it.v.Line, it.field, "%v", err)
			continue
		}
		if prev, dup := seen[key]; dup {
			l.errorf(it.v.Line, it.field, "duplicate of %s", prev)
			continue
		}
		seen[key] = it.field
		out = append(out, v)
	}
	return out, true
}

// join returns the dotted path of key within field, quoting a key that is
// not a plain word: secrets.STRIPE_LIVE, resolve."api.stripe.com".
func join(field, key string) string {
	if key == "" || strings.ContainsFunc(key, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_' || r == '-')
	}) {
		key = strconv.Quote(key)
	}
	if field == "" {
		return key
	}
	return field + "." + key
}

// index returns the path of item i of the list at field.
func index(field string, i int) string { return field + "[" + strconv.Itoa(i) + "]" }

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return "a string"
	}
}

// describe names the kind of n for messages, without its value, which
// could be a credential pasted into the wrong field.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	switch n.ShortTag() {
	case nullTag:
		return "null"
	case "!!bool":
		return "a boolean"
	case "!!int", "!!float":
		return "a number"
	default:
		return "a string"
	}
}

// brief quotes a short keyword-like value for a message; anything longer
// or odder is left out, since it could be a misplaced credential.
func brief(s string) string {
	if len(s) > 16 || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
		return "another value"
	}
	return strconv.Quote(s)
}
