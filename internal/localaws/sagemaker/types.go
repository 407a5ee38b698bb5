package sagemaker

import "github.com/slipway-ml/slipway/internal/localaws/awsjson"

// CreateRequest is the body of CreateTrainingJob: the members this endpoint
// acts on. Others are accepted and ignored, as the service does for members
// it does not know.
type CreateRequest struct {
	TrainingJobName                       string                  `json:"TrainingJobName"`
	HyperParameters                       map[string]string       `json:"HyperParameters,omitempty"`
	AlgorithmSpecification                *AlgorithmSpecification `json:"AlgorithmSpecification,omitempty"`
	RoleArn                               string                  `json:"RoleArn"`
	InputDataConfig                       []Channel               `json:"InputDataConfig,omitempty"`
	OutputDataConfig                      *OutputDataConfig       `json:"OutputDataConfig,omitempty"`
	ResourceConfig                        *ResourceConfig         `json:"ResourceConfig,omitempty"`
	StoppingCondition                     *StoppingCondition      `json:"StoppingCondition,omitempty"`
	Tags                                  []Tag                   `json:"Tags,omitempty"`
	EnableNetworkIsolation                bool                    `json:"EnableNetworkIsolation,omitempty"`
	EnableInterContainerTrafficEncryption bool                    `json:"EnableInterContainerTrafficEncryption,omitempty"`
	EnableManagedSpotTraining             bool                    `json:"EnableManagedSpotTraining,omitempty"`
	CheckpointConfig                      *CheckpointConfig       `json:"CheckpointConfig,omitempty"`
	Environment                           map[string]string       `json:"Environment,omitempty"`
}

// AlgorithmSpecification names the training image and how it is run.
type AlgorithmSpecification struct {
	TrainingImage       string   `json:"TrainingImage,omitempty"`
	AlgorithmName       string   `json:"AlgorithmName,omitempty"`
	TrainingInputMode   string   `json:"TrainingInputMode"`
	ContainerEntrypoint []string `json:"ContainerEntrypoint,omitempty"`
	ContainerArguments  []string `json:"ContainerArguments,omitempty"`
}

// Channel is one named input.
type Channel struct {
	ChannelName       string      `json:"ChannelName"`
	DataSource        *DataSource `json:"DataSource,omitempty"`
	ContentType       string      `json:"ContentType,omitempty"`
	CompressionType   string      `json:"CompressionType,omitempty"`
	RecordWrapperType string      `json:"RecordWrapperType,omitempty"`
	InputMode         string      `json:"InputMode,omitempty"`
}

// DataSource is where a channel's data comes from; only S3 is served.
type DataSource struct {
	S3DataSource *S3DataSource `json:"S3DataSource,omitempty"`
}

// S3DataSource is an S3 prefix (or manifest) feeding a channel.
type S3DataSource struct {
	S3DataType             string `json:"S3DataType"`
	S3URI                  string `json:"S3Uri"`
	S3DataDistributionType string `json:"S3DataDistributionType,omitempty"`
}

// OutputDataConfig is where model.tar.gz and output.tar.gz go.
type OutputDataConfig struct {
	S3OutputPath    string `json:"S3OutputPath"`
	KmsKeyID        string `json:"KmsKeyId,omitempty"`
	CompressionType string `json:"CompressionType,omitempty"`
}

// ResourceConfig is the instances a job asks for.
type ResourceConfig struct {
	InstanceType   string `json:"InstanceType,omitempty"`
	InstanceCount  int    `json:"InstanceCount,omitempty"`
	VolumeSizeInGB int    `json:"VolumeSizeInGB,omitempty"`
	VolumeKmsKeyID string `json:"VolumeKmsKeyId,omitempty"`
}

// StoppingCondition bounds a job's run time.
type StoppingCondition struct {
	MaxRuntimeInSeconds  int `json:"MaxRuntimeInSeconds,omitempty"`
	MaxWaitTimeInSeconds int `json:"MaxWaitTimeInSeconds,omitempty"`
}

// Tag is a key and a value.
type Tag struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

// CheckpointConfig is the S3 prefix synced with the container's checkpoint folder.
type CheckpointConfig struct {
	S3URI     string `json:"S3Uri"`
	LocalPath string `json:"LocalPath,omitempty"`
}

// Transition is one entry of SecondaryStatusTransitions.
type Transition struct {
	Status        string        `json:"Status"`
	StartTime     *awsjson.Time `json:"StartTime,omitempty"`
	EndTime       *awsjson.Time `json:"EndTime,omitempty"`
	StatusMessage string        `json:"StatusMessage,omitempty"`
}

// ModelArtifacts points to the uploaded model.
type ModelArtifacts struct {
	S3ModelArtifacts string `json:"S3ModelArtifacts"`
}

// Job is a training job as DescribeTrainingJob answers it.
type Job struct {
	CreateRequest
	TrainingJobArn             string          `json:"TrainingJobArn"`
	TrainingJobStatus          string          `json:"TrainingJobStatus"`
	SecondaryStatus            string          `json:"SecondaryStatus"`
	FailureReason              string          `json:"FailureReason,omitempty"`
	ModelArtifacts             *ModelArtifacts `json:"ModelArtifacts,omitempty"`
	CreationTime               *awsjson.Time   `json:"CreationTime,omitempty"`
	TrainingStartTime          *awsjson.Time   `json:"TrainingStartTime,omitempty"`
	TrainingEndTime            *awsjson.Time   `json:"TrainingEndTime,omitempty"`
	LastModifiedTime           *awsjson.Time   `json:"LastModifiedTime,omitempty"`
	SecondaryStatusTransitions []Transition    `json:"SecondaryStatusTransitions,omitempty"`
	TrainingTimeInSeconds      int64           `json:"TrainingTimeInSeconds,omitempty"`
	BillableTimeInSeconds      int64           `json:"BillableTimeInSeconds,omitempty"`
}

// Status values (TrainingJobStatus).
const (
	StatusInProgress = "InProgress"
	StatusCompleted  = "Completed"
	StatusFailed     = "Failed"
	StatusStopping   = "Stopping"
	StatusStopped    = "Stopped"
)

// SecondaryStatus values this endpoint goes through.
const (
	SecondaryStarting           = "Starting"
	SecondaryDownloading        = "Downloading"
	SecondaryTraining           = "Training"
	SecondaryUploading          = "Uploading"
	SecondaryStopping           = "Stopping"
	SecondaryStopped            = "Stopped"
	SecondaryCompleted          = "Completed"
	SecondaryFailed             = "Failed"
	SecondaryMaxRuntimeExceeded = "MaxRuntimeExceeded"
	SecondaryInterrupted        = "Interrupted"
)

// terminal reports whether a TrainingJobStatus is final.
func terminal(status string) bool {
	return status == StatusCompleted || status == StatusFailed || status == StatusStopped
}

// record is what is kept on disk for a job: the job and the endpoint's own
// bookkeeping, which the API never shows.
type record struct {
	Job   Job        `json:"job"`
	Local localState `json:"local"`
}

// localState is how the endpoint finds a job's containers again.
type localState struct {
	Containers []string `json:"containers,omitempty"` // container ids, algo-1 first
	Network    string   `json:"network,omitempty"`
	Epoch      int64    `json:"epoch,omitempty"` // names the log streams
}
