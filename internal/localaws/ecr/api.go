package ecr

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/slipway-ml/slipway/internal/localaws/awsjson"
)

// TargetPrefix is the X-Amz-Target prefix of ECR operations.
const TargetPrefix = "AmazonEC2ContainerRegistry_V20150921."

// Password is what GetAuthorizationToken hands out; the registry accepts
// any login.
const Password = "localaws"

// Handler returns the handler of one operation (the part of X-Amz-Target
// after the prefix), or nil when it is not served.
func (s *Service) Handler(op string, log *slog.Logger) http.Handler {
	return awsjson.Ops{
		"CreateRepository":      s.createRepository,
		"DescribeRepositories":  s.describeRepositories,
		"DescribeImages":        s.describeImages,
		"BatchGetImage":         s.batchGetImage,
		"GetAuthorizationToken": s.getAuthorizationToken,
	}.Handler(op, log)
}

var repoNamePattern = regexp.MustCompile(`^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$`)

type repoOut struct {
	RepositoryArn      string        `json:"repositoryArn"`
	RegistryID         string        `json:"registryId"`
	RepositoryName     string        `json:"repositoryName"`
	RepositoryURI      string        `json:"repositoryUri"`
	CreatedAt          *awsjson.Time `json:"createdAt"`
	ImageTagMutability string        `json:"imageTagMutability"`
}

func (s *Service) repoOut(r *repo) repoOut {
	return repoOut{
		RepositoryArn:  fmt.Sprintf("arn:aws:ecr:%s:%s:repository/%s", s.region, s.account, r.Name),
		RegistryID:     s.account,
		RepositoryName: r.Name, RepositoryURI: s.host() + "/" + r.Name,
		CreatedAt: awsjson.NewTime(r.CreatedAt), ImageTagMutability: r.Mutability,
	}
}

func (s *Service) notFound(name string) error {
	return awsjson.Errorf("RepositoryNotFoundException",
		"The repository with name '%s' does not exist in the registry with id '%s'", name, s.account)
}

func (s *Service) createRepository(r *http.Request) (any, error) {
	var in struct {
		RepositoryName     string `json:"repositoryName"`
		ImageTagMutability string `json:"imageTagMutability"`
	}
	if err := awsjson.Decode(r, &in); err != nil {
		return nil, err
	}
	if n := len(in.RepositoryName); n < 2 || n > 256 || !repoNamePattern.MatchString(in.RepositoryName) {
		return nil, awsjson.Errorf("InvalidParameterException",
			"Invalid parameter at 'repositoryName' failed to satisfy constraint: 'must satisfy regular expression '%s''", repoNamePattern)
	}
	switch in.ImageTagMutability {
	case "":
		in.ImageTagMutability = "MUTABLE"
	case "MUTABLE", "IMMUTABLE":
	default:
		return nil, awsjson.Errorf("InvalidParameterException", "Invalid parameter at 'imageTagMutability': must be MUTABLE or IMMUTABLE")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.repos[in.RepositoryName]; ok {
		return nil, awsjson.Errorf("RepositoryAlreadyExistsException",
			"The repository with name '%s' already exists in the registry with id '%s'", in.RepositoryName, s.account)
	}
	rp := &repo{Name: in.RepositoryName, CreatedAt: time.Now().UTC(), Mutability: in.ImageTagMutability, images: map[string]*imageRec{}}
	s.repos[rp.Name] = rp
	if err := s.saveLocked(rp.Name); err != nil {
		delete(s.repos, rp.Name)
		return nil, err
	}
	return map[string]any{"repository": s.repoOut(rp)}, nil
}

func (s *Service) describeRepositories(r *http.Request) (any, error) {
	var in struct {
		RepositoryNames []string `json:"repositoryNames"`
		MaxResults      int      `json:"maxResults"`
		NextToken       string   `json:"nextToken"`
	}
	if err := awsjson.Decode(r, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []repoOut
	if len(in.RepositoryNames) > 0 {
		for _, n := range in.RepositoryNames {
			rp, ok := s.repos[n]
			if !ok {
				return nil, s.notFound(n)
			}
			out = append(out, s.repoOut(rp))
		}
		return map[string]any{"repositories": out}, nil
	}
	for _, rp := range s.repos {
		out = append(out, s.repoOut(rp))
	}
	slices.SortFunc(out, func(a, b repoOut) int { return strings.Compare(a.RepositoryName, b.RepositoryName) })
	page, next, err := paginate(out, in.NextToken, in.MaxResults, 1000)
	if err != nil {
		return nil, err
	}
	res := map[string]any{"repositories": page}
	if next != "" {
		res["nextToken"] = next
	}
	return res, nil
}

type imageID struct {
	ImageDigest string `json:"imageDigest,omitempty"`
	ImageTag    string `json:"imageTag,omitempty"`
}

// find returns the image an id names, or nil.
func (rp *repo) find(id imageID) *imageRec {
	if id.ImageDigest != "" {
		img := rp.images[id.ImageDigest]
		if img == nil || id.ImageTag != "" && !slices.Contains(img.Tags, id.ImageTag) {
			return nil
		}
		return img
	}
	for _, img := range rp.images {
		if slices.Contains(img.Tags, id.ImageTag) {
			return img
		}
	}
	return nil
}

func (s *Service) describeImages(r *http.Request) (any, error) {
	var in struct {
		RepositoryName string    `json:"repositoryName"`
		ImageIDs       []imageID `json:"imageIds"`
		MaxResults     int       `json:"maxResults"`
		NextToken      string    `json:"nextToken"`
		Filter         struct {
			TagStatus string `json:"tagStatus"`
		} `json:"filter"`
	}
	if err := awsjson.Decode(r, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rp, ok := s.repos[in.RepositoryName]
	if !ok {
		return nil, s.notFound(in.RepositoryName)
	}
	var imgs []*imageRec
	if len(in.ImageIDs) > 0 {
		for _, id := range in.ImageIDs {
			img := rp.find(id)
			if img == nil {
				return nil, awsjson.Errorf("ImageNotFoundException",
					"The image with imageId {imageDigest:'%s', imageTag:'%s'} does not exist within the repository with name '%s' in the registry with id '%s'",
					id.ImageDigest, id.ImageTag, in.RepositoryName, s.account)
			}
			imgs = append(imgs, img)
		}
	} else {
		for _, img := range rp.images {
			tagged := len(img.Tags) > 0
			if in.Filter.TagStatus == "TAGGED" && !tagged || in.Filter.TagStatus == "UNTAGGED" && tagged {
				continue
			}
			imgs = append(imgs, img)
		}
		slices.SortFunc(imgs, func(a, b *imageRec) int { return a.PushedAt.Compare(b.PushedAt) })
	}
	type detail struct {
		RegistryID             string        `json:"registryId"`
		RepositoryName         string        `json:"repositoryName"`
		ImageDigest            string        `json:"imageDigest"`
		ImageTags              []string      `json:"imageTags,omitempty"`
		ImageSizeInBytes       int64         `json:"imageSizeInBytes"`
		ImagePushedAt          *awsjson.Time `json:"imagePushedAt"`
		ImageManifestMediaType string        `json:"imageManifestMediaType"`
		ArtifactMediaType      string        `json:"artifactMediaType,omitempty"`
	}
	var out []detail
	for _, img := range imgs {
		out = append(out, detail{RegistryID: s.account, RepositoryName: rp.Name, ImageDigest: img.Digest,
			ImageTags: img.Tags, ImageSizeInBytes: manifestSize(img.Body), ImagePushedAt: awsjson.NewTime(img.PushedAt),
			ImageManifestMediaType: img.MediaType, ArtifactMediaType: configMediaType(img.Body)})
	}
	page, next, err := paginate(out, in.NextToken, in.MaxResults, 1000)
	if err != nil {
		return nil, err
	}
	res := map[string]any{"imageDetails": page}
	if next != "" {
		res["nextToken"] = next
	}
	return res, nil
}

type manifest struct {
	Config struct {
		MediaType string `json:"mediaType"`
		Size      int64  `json:"size"`
	} `json:"config"`
	Layers []struct {
		Size int64 `json:"size"`
	} `json:"layers"`
}

// manifestSize is the sum of an image's layers, as ECR reports it.
func manifestSize(body []byte) int64 {
	var m manifest
	if json.Unmarshal(body, &m) != nil {
		return 0
	}
	var n int64
	for _, l := range m.Layers {
		n += l.Size
	}
	return n
}

func configMediaType(body []byte) string {
	var m manifest
	_ = json.Unmarshal(body, &m)
	return m.Config.MediaType
}

func (s *Service) batchGetImage(r *http.Request) (any, error) {
	var in struct {
		RepositoryName     string    `json:"repositoryName"`
		ImageIDs           []imageID `json:"imageIds"`
		AcceptedMediaTypes []string  `json:"acceptedMediaTypes"`
	}
	if err := awsjson.Decode(r, &in); err != nil {
		return nil, err
	}
	if len(in.ImageIDs) == 0 || len(in.ImageIDs) > 100 {
		return nil, awsjson.Errorf("InvalidParameterException", "imageIds must hold 1 to 100 image ids")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rp, ok := s.repos[in.RepositoryName]
	if !ok {
		return nil, s.notFound(in.RepositoryName)
	}
	type image struct {
		RegistryID             string  `json:"registryId"`
		RepositoryName         string  `json:"repositoryName"`
		ImageID                imageID `json:"imageId"`
		ImageManifest          string  `json:"imageManifest"`
		ImageManifestMediaType string  `json:"imageManifestMediaType"`
	}
	type failure struct {
		ImageID       imageID `json:"imageId"`
		FailureCode   string  `json:"failureCode"`
		FailureReason string  `json:"failureReason"`
	}
	images, failures := []image{}, []failure{}
	for _, id := range in.ImageIDs {
		img := rp.find(id)
		switch {
		case img == nil && id.ImageDigest != "" && id.ImageTag != "" && rp.images[id.ImageDigest] != nil:
			failures = append(failures, failure{id, "ImageTagDoesNotMatchDigest", "Requested image's tag does not match the digest"})
		case img == nil:
			failures = append(failures, failure{id, "ImageNotFound", "Requested image not found"})
		case len(in.AcceptedMediaTypes) > 0 && !slices.Contains(in.AcceptedMediaTypes, img.MediaType):
			failures = append(failures, failure{id, "UnsupportedImageType", "Requested image's media type is not accepted"})
		default:
			images = append(images, image{RegistryID: s.account, RepositoryName: rp.Name,
				ImageID: imageID{ImageDigest: img.Digest, ImageTag: id.ImageTag}, ImageManifest: string(img.Body),
				ImageManifestMediaType: img.MediaType})
		}
	}
	return map[string]any{"images": images, "failures": failures}, nil
}

func (s *Service) getAuthorizationToken(*http.Request) (any, error) {
	token := base64.StdEncoding.EncodeToString([]byte("AWS:" + Password))
	return map[string]any{"authorizationData": []map[string]any{{
		"authorizationToken": token,
		"expiresAt":          awsjson.NewTime(time.Now().Add(12 * time.Hour)),
		"proxyEndpoint":      "http://" + s.host(),
	}}}, nil
}

func paginate[T any](all []T, token string, limit, maxLimit int) ([]T, string, error) {
	if limit < 0 || limit > maxLimit {
		return nil, "", awsjson.Errorf("InvalidParameterException", "maxResults must be within 1..%d", maxLimit)
	}
	if limit == 0 {
		limit = 100
	}
	start := 0
	if token != "" {
		n, err := strconv.Atoi(token)
		if err != nil || n < 0 {
			return nil, "", awsjson.Errorf("InvalidParameterException", "Invalid nextToken")
		}
		start = min(n, len(all))
	}
	end := min(len(all), start+limit)
	page := all[start:end]
	if page == nil {
		page = []T{}
	}
	if end < len(all) {
		return page, strconv.Itoa(end), nil
	}
	return page, "", nil
}
