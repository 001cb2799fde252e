package rules

import (
	"testing"
	"time"
)

func TestParseBudgetPer(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration // 0: an error
		text string        // FormatBudgetPer of want
	}{
		{"1s", time.Second, "1s"},
		{"90s", 90 * time.Second, "1m30s"},
		{"30m", 30 * time.Minute, "30m"},
		{"1h", time.Hour, "1h"},
		{"1h30m", 90 * time.Minute, "1h30m"},
		{"24h", 24 * time.Hour, "1d"},
		{"7d", 7 * 24 * time.Hour, "7d"},
		{"31d", MaxBudgetPer, "31d"},
		{"744h", MaxBudgetPer, "31d"},
		{"999ms", 0, ""},
		{"32d", 0, ""},
		{"0d", 0, ""},
		{"07d", 0, ""},
		{"-1h", 0, ""},
		{"1.5d", 0, ""},
		{"3600", 0, ""},
		{"", 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseBudgetPer(tc.in)
			if tc.want == 0 {
				if err == nil {
					t.Fatalf("got %v, want an error", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %v, %v, want %v", got, err, tc.want)
			}
			if s := FormatBudgetPer(got); s != tc.text {
				t.Fatalf("FormatBudgetPer: got %q, want %q", s, tc.text)
			}
			if again, err := ParseBudgetPer(FormatBudgetPer(got)); err != nil || again != got {
				t.Fatalf("round trip: got %v, %v, want %v", again, err, got)
			}
		})
	}
}

func TestBudgetApplies(t *testing.T) {
	every := Budget{Requests: 5000, Per: 24 * time.Hour}
	stripe := Budget{Secrets: []string{"OPENAI", "STRIPE_LIVE"}, Requests: 100, Per: time.Hour}
	tests := []struct {
		name string
		b    Budget
		used []string
		want bool
	}{
		{"every request, no secret", every, nil, true},
		{"every request, a secret", every, []string{"X"}, true},
		{"per secret, no secret", stripe, nil, false},
		{"per secret, another secret", stripe, []string{"GITHUB"}, false},
		{"per secret, one of them", stripe, []string{"GITHUB", "STRIPE_LIVE"}, true},
		{"per secret, unsorted", stripe, []string{"STRIPE_LIVE", "A"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.b.Applies(tc.used); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
	if got, want := stripe.String(), "OPENAI,STRIPE_LIVE:100/1h"; got != want {
		t.Fatalf("String: got %q, want %q", got, want)
	}
	if got, want := every.String(), "*:5000/1d"; got != want {
		t.Fatalf("String: got %q, want %q", got, want)
	}
}

// FuzzParseBudgetPer checks that a window's length either fails or lies
// within the bounds and prints back to itself.
func FuzzParseBudgetPer(f *testing.F) {
	for _, s := range []string{"1s", "90s", "1h30m", "24h", "7d", "31d", "32d", "0d", "-1h", "1.5h", "999ms", "9223372036854775807d", "1e3h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseBudgetPer(s)
		if err != nil {
			return
		}
		if d < MinBudgetPer || d > MaxBudgetPer {
			t.Fatalf("%q: got %v, outside %v..%v", s, d, MinBudgetPer, MaxBudgetPer)
		}
		if again, err := ParseBudgetPer(FormatBudgetPer(d)); err != nil || again != d {
			t.Fatalf("%q: %v printed as %q parses to %v, %v", s, d, FormatBudgetPer(d), again, err)
		}
	})
}
