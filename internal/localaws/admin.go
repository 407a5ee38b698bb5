package localaws

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/slipway-ml/slipway/internal/localaws/awsjson"
	"github.com/slipway-ml/slipway/internal/localaws/fault"
)

// FaultsBody is the JSON of GET and POST /_localaws/faults; StartDelay is a
// Go duration ("2s").
type FaultsBody struct {
	ThrottleRate      float64 `json:"ThrottleRate"`
	CapacityErrorRate float64 `json:"CapacityErrorRate"`
	StartDelay        string  `json:"StartDelay"`
}

// adminHandler serves:
//
//	GET  /_localaws/health            200 "ok"
//	GET  /_localaws/faults            the current faults
//	POST /_localaws/faults            replace them (FaultsBody)
//	POST /_localaws/interrupt?job=N   interrupt spot training job N
func (s *Server) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+AdminPrefix+"health", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET "+AdminPrefix+"faults", func(w http.ResponseWriter, _ *http.Request) {
		writeFaults(w, s.faults.Get())
	})
	mux.HandleFunc("POST "+AdminPrefix+"faults", func(w http.ResponseWriter, r *http.Request) {
		var in FaultsBody
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			http.Error(w, fmt.Sprintf("decoding faults: %v", err), http.StatusBadRequest)
			return
		}
		f, err := in.faults()
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.faults.Set(f)
		s.log.Info("faults set", "throttle", f.ThrottleRate, "capacity", f.CapacityErrorRate, "start_delay", f.StartDelay)
		writeFaults(w, f)
	})
	mux.HandleFunc("POST "+AdminPrefix+"interrupt", func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Query().Get("job")
		if name == "" {
			http.Error(w, "missing ?job=NAME", http.StatusBadRequest)
			return
		}
		if err := s.sm.Stop(name, "interrupt"); err != nil {
			var e *awsjson.Error
			if errors.As(err, &e) {
				http.Error(w, e.Message, http.StatusConflict)
				return
			}
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		s.log.Info("spot interruption injected", "job", name)
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

func (b FaultsBody) faults() (fault.Faults, error) {
	f := fault.Faults{ThrottleRate: b.ThrottleRate, CapacityErrorRate: b.CapacityErrorRate}
	if b.StartDelay != "" {
		d, err := time.ParseDuration(b.StartDelay)
		if err != nil {
			return f, fmt.Errorf("StartDelay: %w", err)
		}
		f.StartDelay = d
	}
	return f, f.Validate()
}

func writeFaults(w http.ResponseWriter, f fault.Faults) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(FaultsBody{ThrottleRate: f.ThrottleRate, CapacityErrorRate: f.CapacityErrorRate,
		StartDelay: f.StartDelay.String()})
}

// SetFaults replaces the injected faults at run time.
func (s *Server) SetFaults(f Faults) error {
	if err := f.Validate(); err != nil {
		return err
	}
	s.faults.Set(f)
	return nil
}
