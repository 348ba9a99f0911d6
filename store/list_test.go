package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ouroboros-cloud/ouro/api"
)

// seed creates count instances in each project, labelled by parity.
func seed(t *testing.T, s Interface, projects []string, count int) []string {
	t.Helper()
	ctx := context.Background()
	var want []string
	for _, p := range projects {
		for i := range count {
			par := "even"
			if i%2 == 1 {
				par = "odd"
			}
			name := fmt.Sprintf("i%02d", i)
			if _, err := s.Create(ctx, instance(p, name, map[string]string{"parity": par}), CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			want = append(want, p+"/"+name)
		}
	}
	return want
}

func TestListSelectorFilterIsolation(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := testCtx(t)
	seed(t, s, []string{"a", "ab", "b"}, 4)
	odd, err := api.ParseSelector("parity=odd")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		project string
		opts    ListOptions
		want    []string
	}{
		{"one project", "a", ListOptions{}, []string{"a/i00", "a/i01", "a/i02", "a/i03"}},
		{"prefix sibling", "ab", ListOptions{}, []string{"ab/i00", "ab/i01", "ab/i02", "ab/i03"}},
		{"no such project", "c", ListOptions{}, []string{}},
		{"selector", "b", ListOptions{Selector: odd}, []string{"b/i01", "b/i03"}},
		{"filter", "", ListOptions{Filter: func(o api.Object) bool { return o.Meta().Name == "i02" }}, []string{"a/i02", "ab/i02", "b/i02"}},
		{"all projects sorted", "", ListOptions{Selector: odd, Filter: func(o api.Object) bool { return o.Meta().Name == "i03" }}, []string{"a/i03", "ab/i03", "b/i03"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			items, meta, err := s.List(ctx, api.InstanceKind, tt.project, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := names(items); !slices.Equal(got, tt.want) && !(len(got) == 0 && len(tt.want) == 0) {
				t.Fatalf("List = %v, want %v", got, tt.want)
			}
			if meta.Continue != "" || meta.ResourceVersion == "" {
				t.Fatalf("ListMeta = %+v", meta)
			}
		})
	}
}

// listAll pages through a list with limit and returns every item.
func listAll(t *testing.T, s Interface, project string, opts ListOptions, between func()) ([]string, int) {
	t.Helper()
	var all []string
	pages := 0
	rv := ""
	for {
		items, meta, err := s.List(context.Background(), api.InstanceKind, project, opts)
		if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		pages++
		if len(items) > opts.Limit {
			t.Fatalf("page %d has %d items, limit %d", pages, len(items), opts.Limit)
		}
		if rv != "" && meta.ResourceVersion != rv {
			t.Fatalf("page %d read at %s, first page at %s", pages, meta.ResourceVersion, rv)
		}
		rv = meta.ResourceVersion
		all = append(all, names(items)...)
		if meta.Continue == "" {
			return all, pages
		}
		opts.Continue = meta.Continue
		if between != nil {
			between()
		}
	}
}

func TestListPagination(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := testCtx(t)
	want := seed(t, s, []string{"a", "ab", "b"}, 9) // 27 objects

	// Changes made while paging are not seen: the list is one snapshot.
	n := 0
	between := func() {
		n++
		if _, err := s.Create(ctx, instance("a", "new"+strconv.Itoa(n), nil), CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, api.InstanceKind, "b", fmt.Sprintf("i%02d", n), ""); err != nil {
			t.Fatal(err)
		}
	}
	got, pages := listAll(t, s, "", ListOptions{Limit: 7}, between)
	if !slices.Equal(got, want) {
		t.Fatalf("paged list = %v\nwant %v", got, want)
	}
	if pages != 4 {
		t.Fatalf("%d pages, want 4", pages)
	}

	// Limit with a selector reads on until the page is full.
	odd, _ := api.ParseSelector("parity=odd")
	got, _ = listAll(t, s, "ab", ListOptions{Limit: 2, Selector: odd}, nil)
	if want := []string{"ab/i01", "ab/i03", "ab/i05", "ab/i07"}; !slices.Equal(got, want) {
		t.Fatalf("paged selector list = %v, want %v", got, want)
	}
	// An exact fit ends without an extra empty page.
	got, pages = listAll(t, s, "ab", ListOptions{Limit: 9}, nil)
	if len(got) != 9 || pages != 1 {
		t.Fatalf("exact fit: %d items in %d pages", len(got), pages)
	}
}

func TestListPaginationAcrossBatches(t *testing.T) {
	s, cli := newTestStore(t)
	ctx := testCtx(t)
	// More objects than one etcd batch, few matching: a page must read
	// several batches to fill up.
	const total = 2*listBatch + 10
	ops := make([]clientv3.Op, 0, 100)
	flush := func() {
		if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
		ops = ops[:0]
	}
	for i := range total {
		obj := instance("p", fmt.Sprintf("i%05d", i), nil)
		if i%500 == 0 {
			obj.Metadata.Labels = map[string]string{"pick": "yes"}
		}
		b, _ := encode(obj)
		ops = append(ops, clientv3.OpPut(objectKey(api.InstanceKind, "p", obj.Metadata.Name), string(b)))
		if len(ops) == cap(ops) {
			flush()
		}
	}
	flush()
	pick, _ := api.ParseSelector("pick=yes")
	got, _ := listAll(t, s, "p", ListOptions{Limit: 2, Selector: pick}, nil)
	want := []string{"p/i00000", "p/i00500", "p/i01000", "p/i01500", "p/i02000"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	all, _, err := s.List(ctx, api.InstanceKind, "p", ListOptions{})
	if err != nil || len(all) != total {
		t.Fatalf("unpaged list: %d items, %v", len(all), err)
	}
}

func TestListContinueErrors(t *testing.T) {
	s, cli := newTestStore(t)
	ctx := testCtx(t)
	seed(t, s, []string{"a"}, 5)
	_, meta, err := s.List(ctx, api.InstanceKind, "a", ListOptions{Limit: 2})
	if err != nil || meta.Continue == "" {
		t.Fatalf("first page: %+v, %v", meta, err)
	}
	var apiErr *api.Error
	for _, bad := range []string{"!!!", "e30", encodeContinue(0, "x")} {
		if _, _, err := s.List(ctx, api.InstanceKind, "a", ListOptions{Limit: 2, Continue: bad}); !errors.As(err, &apiErr) || apiErr.Field != "continue" {
			t.Errorf("token %q: %v, want an invalid-argument error on continue", bad, err)
		}
	}
	// A token cannot escape its prefix: from project "a" into "z".
	seed(t, s, []string{"z"}, 1)
	_, now, err := s.List(ctx, api.InstanceKind, "", ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nowRev, _ := strconv.ParseInt(now.ResourceVersion, 10, 64)
	for _, start := range []string{"../z/", "\xff", "i03"} {
		items, _, err := s.List(ctx, api.InstanceKind, "a", ListOptions{Limit: 10, Continue: encodeContinue(nowRev, start)})
		if err != nil {
			t.Fatalf("token starting at %q: %v", start, err)
		}
		for _, o := range items {
			if o.Meta().Project != "a" {
				t.Fatalf("token starting at %q read %v", start, names(items))
			}
		}
		if start == "i03" && len(items) != 2 {
			t.Fatalf("token starting at i03 read %v, want a/i03 and a/i04", names(items))
		}
	}

	rev, err := strconv.ParseInt(meta.ResourceVersion, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, instance("a", "later", nil), CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cur, err := cli.Get(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, cur.Header.Revision); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.List(ctx, api.InstanceKind, "a", ListOptions{Limit: 2, Continue: meta.Continue}); !errors.Is(err, ErrCompacted) {
		t.Fatalf("continue after compaction at %d (list at %d): %v, want ErrCompacted", cur.Header.Revision, rev, err)
	}
}
