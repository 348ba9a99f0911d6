package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

// cutServer answers instance creates; the first answer to each
// idempotency key is cut in the middle of its body, as when the server
// dies while writing it.
type cutServer struct {
	mu      sync.Mutex
	keys    []string
	made    map[string]*api.Instance // by idempotency key
	created int
}

func (s *cutServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var inst api.Instance
	if err := json.NewDecoder(r.Body).Decode(&inst); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	s.mu.Lock()
	s.keys = append(s.keys, key)
	prev, replay := s.made[key]
	if !replay {
		s.created++
		inst.Metadata.UID = fmt.Sprintf("uid-%d", s.created)
		inst.Metadata.Project = r.PathValue("p")
		s.made[key] = &inst
	}
	s.mu.Unlock()
	if replay {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		json.NewEncoder(w).Encode(prev)
		return
	}
	body, _ := json.Marshal(inst)
	conn, buf, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	fmt.Fprintf(buf, "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
	buf.Write(body[:len(body)/2])
	buf.Flush()
}

func TestCreateRetriesCutAnswer(t *testing.T) {
	s := &cutServer{made: map[string]*api.Instance{}}
	mux := http.NewServeMux()
	mux.Handle("POST /v1/projects/{p}/instances", s)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c, err := New(Config{Server: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	inst := &api.Instance{Metadata: api.ObjectMeta{Name: "web", Project: "demo"}, Spec: api.InstanceSpec{Image: "alpine"}}
	existed, err := c.Create(ctx, inst, CreateOptions{IdempotencyKey: "k1"})
	if err != nil {
		t.Fatalf("create with a cut answer: %v", err)
	}
	if !existed || inst.Metadata.UID != "uid-1" || inst.Metadata.Project != "demo" {
		t.Errorf("got existed %v, %+v; want the instance made by the first attempt", existed, inst.Metadata)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.keys) != 2 || s.keys[0] != "k1" || s.keys[1] != "k1" {
		t.Errorf("keys sent %q, want the same key twice", s.keys)
	}
	if s.created != 1 {
		t.Errorf("%d instances made, want 1", s.created)
	}
}

func TestCreateWithoutKeyDoesNotRetryCutAnswer(t *testing.T) {
	s := &cutServer{made: map[string]*api.Instance{}}
	mux := http.NewServeMux()
	mux.Handle("POST /v1/projects/{p}/instances", s)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c, err := New(Config{Server: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	inst := &api.Instance{Metadata: api.ObjectMeta{Name: "web", Project: "demo"}}
	if _, err := c.Create(context.Background(), inst, CreateOptions{}); err == nil {
		t.Fatal("a cut answer to a create without key was not an error")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.keys) != 1 {
		t.Errorf("a create without key was sent %d times, want once (a retry could make a second object)", len(s.keys))
	}
}
