package audit

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestFormatDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0.00ms"},
		{210 * time.Microsecond, "0.21ms"},
		{41200 * time.Microsecond, "41.2ms"},
		{999900 * time.Microsecond, "999.9ms"},
		{1500 * time.Millisecond, "1.50s"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			if got := formatDuration(tc.d); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLineColumnsStayAligned(t *testing.T) {
	at := time.Date(2026, 11, 26, 10, 30, 0, 123e6, time.UTC)
	no := false
	entries := []Entry{
		{Time: at, Agent: "billing", TokenID: "task-42", Decision: Allow, Status: 200, Method: "GET", Scheme: "https",
			Host: "api.stripe.com", Port: 443, Path: "/v1/charges", Secrets: []string{"STRIPE_LIVE"}},
		{Time: at, Agent: "an-agent-with-a-long-name", TokenID: "a-token-id-longer-than-its-column", TokenVerified: &no,
			Decision: Deny, Status: 407, Method: "PROPFIND", Scheme: "https", Host: "api.example.com", Port: 443,
			Path: "/" + strings.Repeat("é", 80), Secrets: []string{"A_VERY_LONG_SECRET_NAME", "ANOTHER_ONE"}, Reason: "token_revoked"},
		{Time: at, Decision: Deny, Status: 403, Method: "CONNECT", Host: "10.0.0.1", Port: 443, Reason: "private_address"},
	}
	p := &Printer{Loc: time.UTC}
	var cols [][]int // the start of each column, in runes
	for i := range entries {
		line := string(p.appendLine(nil, &entries[i]))
		if !strings.HasPrefix(line, "2026-11-26 10:30:00.123Z  ") {
			t.Errorf("line %d: got %q, want the date and a UTC mark first", i, line)
		}
		var starts []int
		runes := []rune(line)
		for j := 1; j < len(runes) && len(starts) < 8; j++ {
			if runes[j] != ' ' && runes[j-1] == ' ' && runes[j-2] == ' ' {
				starts = append(starts, j)
			}
		}
		cols = append(cols, starts)
	}
	for i := 1; i < len(cols); i++ {
		if !slices.Equal(cols[i], cols[0]) {
			t.Errorf("line %d: columns start at %v, want %v as on line 0", i, cols[i], cols[0])
		}
	}
	long := string(p.appendLine(nil, &entries[1]))
	for _, want := range []string{"an-agent-wi…", "a-token-id-lon…?", "é…", "token_revoked"} {
		if !strings.Contains(long, want) {
			t.Errorf("got %q, want it to contain %q", long, want)
		}
	}
	if strings.Contains(long, "longer-than-its-column") {
		t.Error("a long token id was not cut to its column")
	}
	if got := tokenText(&entries[1]); !strings.HasSuffix(got, "?") {
		t.Errorf("an unverified token id: got %q, want it marked with ?", got)
	}
	if got := string(p.appendLine(nil, &entries[0])); !strings.Contains(got, "  task-42  ") {
		t.Errorf("got %q, want the token id column", got)
	}
}
