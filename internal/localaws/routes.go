package localaws

import (
	"net/http"
	"strings"

	"github.com/slipway-ml/slipway/internal/localaws/awsjson"
	"github.com/slipway-ml/slipway/internal/localaws/ecr"
	"github.com/slipway-ml/slipway/internal/localaws/logs"
	"github.com/slipway-ml/slipway/internal/localaws/sagemaker"
	"github.com/slipway-ml/slipway/internal/localaws/secretsmanager"
	"github.com/slipway-ml/slipway/internal/localaws/ssm"
	"github.com/slipway-ml/slipway/internal/localaws/sts"
)

// AdminPrefix is where the admin endpoint lives (fault injection, health).
const AdminPrefix = "/_localaws/"

func (s *Server) routes() http.Handler {
	admin := s.adminHandler()
	registry := s.ecr.Registry()
	stsHandler := sts.Handler(s.cfg.Account)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, AdminPrefix):
			admin.ServeHTTP(w, r)
		case r.URL.Path == "/v2" || strings.HasPrefix(r.URL.Path, "/v2/"):
			registry.ServeHTTP(w, r)
		case r.Header.Get("X-Amz-Target") != "":
			s.serveJSON(w, r)
		case sts.IsRequest(r):
			stsHandler.ServeHTTP(w, r)
		default:
			s.s3.ServeHTTP(w, r)
		}
	})
}

// serveJSON dispatches an AWS JSON protocol call by its X-Amz-Target.
func (s *Server) serveJSON(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	var h http.Handler
	switch {
	case strings.HasPrefix(target, sagemaker.TargetPrefix):
		h = s.sm.Handler(strings.TrimPrefix(target, sagemaker.TargetPrefix), s.log)
	case strings.HasPrefix(target, ecr.TargetPrefix):
		h = s.ecr.Handler(strings.TrimPrefix(target, ecr.TargetPrefix), s.log)
	case strings.HasPrefix(target, logs.TargetPrefix):
		h = s.logs.Handler(strings.TrimPrefix(target, logs.TargetPrefix), s.log)
	case strings.HasPrefix(target, secretsmanager.TargetPrefix):
		h = s.secrets.Handler(strings.TrimPrefix(target, secretsmanager.TargetPrefix), s.log)
	case strings.HasPrefix(target, ssm.TargetPrefix):
		h = s.params.Handler(strings.TrimPrefix(target, ssm.TargetPrefix), s.log)
	}
	if h == nil {
		awsjson.WriteError(w, s.log, awsjson.Errorf("UnknownOperationException",
			"The local AWS endpoint does not serve %s.", target))
		return
	}
	if s.faults.Throttle() {
		awsjson.WriteError(w, s.log, awsjson.Errorf("ThrottlingException", "Rate exceeded (injected by the local endpoint)"))
		return
	}
	h.ServeHTTP(w, r)
}
