package ec2

import (
	"encoding/base64"
	"strconv"
	"strings"
)

// Pagination: NextToken is an opaque offset into the answer's order
// (objects sorted by name); MaxResults is 5..1000 as AWS allows.

const (
	minResults = 5
	maxResults = 1000
)

// paginate returns the page of items MaxResults and NextToken ask for,
// and the token of the next page ("" at the end).
func paginate[T any](p Params, items []T) ([]T, string, error) {
	max, err := p.Int("MaxResults", 0)
	if err != nil {
		return nil, "", err
	}
	if p.Has("MaxResults") && (max < minResults || max > maxResults) {
		return nil, "", invalidValue("Value ( %d ) for parameter maxResults is invalid. Expecting a value between %d and %d.", max, minResults, maxResults)
	}
	start := 0
	if tok := p.String("NextToken"); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		n, convErr := strconv.Atoi(strings.TrimPrefix(string(b), "o:"))
		if err != nil || convErr != nil || !strings.HasPrefix(string(b), "o:") || n < 0 {
			return nil, "", invalidValue("The token '%s' is invalid", clip(tok))
		}
		start = min(n, len(items))
	}
	if max == 0 {
		return items[start:], "", nil
	}
	end := min(start+max, len(items))
	next := ""
	if end < len(items) {
		next = base64.RawURLEncoding.EncodeToString([]byte("o:" + strconv.Itoa(end)))
	}
	return items[start:end], next, nil
}
