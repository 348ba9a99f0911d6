package output

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestAge(t *testing.T) {
	now := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		ago  time.Duration
		want string
	}{
		{5 * time.Second, "5s"},
		{59 * time.Second, "59s"},
		{3 * time.Minute, "3m"},
		{2*time.Hour + 10*time.Minute, "2h"},
		{47 * time.Hour, "47h"},
		{4 * 24 * time.Hour, "4d"},
		{-time.Minute, "0s"},
	}
	for _, tt := range tests {
		if got := Age(now.Add(-tt.ago), now); got != tt.want {
			t.Errorf("Age(%s ago) = %q, want %q", tt.ago, got, tt.want)
		}
	}
	if got := Age(time.Time{}, now); got != "-" {
		t.Errorf("Age(zero) = %q, want -", got)
	}
}

func TestBytesString(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536 * 1024, "1.5 MiB"}, {3 << 30, "3.0 GiB"},
	}
	for _, tt := range tests {
		if got := Bytes(tt.n); got != tt.want {
			t.Errorf("Bytes(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

// fakeClock advances by step on every reading.
type fakeClock struct {
	t    time.Time
	step time.Duration
}

func (c *fakeClock) now() time.Time {
	c.t = c.t.Add(c.step)
	return c.t
}

func TestProgressPlainLines(t *testing.T) {
	var buf bytes.Buffer
	clk := &fakeClock{t: time.Unix(0, 0), step: time.Second}
	p := NewProgressBar(&buf, false, "Uploading x", clk.now)
	const total = 1000
	for done := int64(0); done <= total; done += 25 {
		p.Update(done, total)
	}
	p.Finish()
	lines := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
	if len(lines) != 11 {
		t.Fatalf("want a line per tenth (0%%..100%%), got %d:\n%s", len(lines), buf.String())
	}
	if strings.Contains(buf.String(), "\r") {
		t.Error("plain output must not use carriage returns")
	}
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "Uploading x: 100%") || !strings.Contains(last, "1000 B / 1000 B") || !strings.Contains(last, "B/s") {
		t.Errorf("last line %q", last)
	}
}

func TestProgressTerminalBar(t *testing.T) {
	var buf bytes.Buffer
	clk := &fakeClock{t: time.Unix(0, 0), step: 50 * time.Millisecond}
	p := NewProgressBar(&buf, true, "Uploading x", clk.now)
	for done := int64(0); done <= 4<<20; done += 1 << 18 {
		p.Update(done, 4<<20)
	}
	p.Finish()
	out := buf.String()
	draws := strings.Count(out, "\r")
	if draws == 0 || draws >= 17 {
		t.Fatalf("want throttled redraws (fewer than updates), got %d:\n%q", draws, out)
	}
	final := out[strings.LastIndex(out, "\r"):]
	for _, w := range []string{"[" + strings.Repeat("=", barWidth) + "]", "100%", "4.0 MiB / 4.0 MiB", "MiB/s"} {
		if !strings.Contains(final, w) {
			t.Errorf("final draw %q lacks %q", final, w)
		}
	}
	if !strings.HasSuffix(out, "\n") {
		t.Error("finish should end the line")
	}
}

func TestHumanPluralAndListKind(t *testing.T) {
	tests := []struct{ plural, words, list string }{
		{"instances", "instances", "InstanceList"},
		{"securitygroups", "security groups", "SecurityGroupList"},
		{"floatingips", "floating IPs", "FloatingIPList"},
		{"floatingippools", "floating IP pools", "FloatingIPPoolList"},
		{"jointokens", "join tokens", "JoinTokenList"},
		{"widgets", "widgets", "WidgetList"},
	}
	for _, tt := range tests {
		if got := HumanPlural(tt.plural); got != tt.words {
			t.Errorf("HumanPlural(%q) = %q, want %q", tt.plural, got, tt.words)
		}
		if got := KindListName(tt.plural); got != tt.list {
			t.Errorf("KindListName(%q) = %q, want %q", tt.plural, got, tt.list)
		}
	}
}
