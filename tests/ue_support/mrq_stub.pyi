# Movie Render Queue (MovieRenderPipeline plugin) classes used by ue_scripts/, as a type stub.
#
# unreal-stub 0.3 was generated from an editor without the Movie Render Queue plugin, so it has no
# MoviePipeline* classes. This file adds the ones we use, appended to the sanitised stub by
# tests/ue_support/stub_sanitiser.py (so names like Object, Class, EditorSubsystem resolve there).
# Only what ue_scripts/ needs is declared; anything else is an error, as it should be.
#
# Written from the official Unreal Engine Python API reference, UE 5.3 (checked against 5.4-5.7 pages
# where they differ), https://dev.epicgames.com/documentation/en-us/unreal-engine/python-api/ :
#   class/MoviePipelineQueueSubsystem        (5.3-5.7: get_queue, render_queue_with_executor_instance,
#                                              is_rendering, get_active_executor)
#   class/MoviePipelineQueue                 (allocate_new_job(job_type), delete_all_jobs, get_jobs)
#   class/MoviePipelineExecutorJob           (5.3: job_name, map, sequence, author, comment,
#                                              get_configuration() -> MoviePipelinePrimaryConfig)
#   class/MoviePipelineConfigBase            (5.3-5.7: find_or_add_setting_by_class(class_,
#                                              include_disabled_settings=False, exact_match=False)
#                                              -> MoviePipelineSetting; 4.27-5.2 lack exact_match)
#   class/MoviePipelinePrimaryConfig         (5.2+; MoviePipelineMasterConfig before 5.2)
#   class/MoviePipelineSetting, MoviePipelineOutputSetting (output_directory, file_name_format,
#                                              output_resolution, use_custom_playback_range,
#                                              custom_start_frame, custom_end_frame,
#                                              use_custom_frame_rate, output_frame_rate,
#                                              zero_pad_frame_numbers, frame_number_offset,
#                                              handle_frame_count, override_existing_output)
#   class/MoviePipelineDeferredPassBase      (MoviePipelineImagePassBase <- MoviePipelineRenderPass)
#   class/MoviePipelineImageSequenceOutput_PNG, class/MoviePipelineImageSequenceOutput_EXR
#   class/MoviePipelineAntiAliasingSetting   (spatial_sample_count, temporal_sample_count,
#                                              override_anti_aliasing, anti_aliasing_method,
#                                              engine_warm_up_count, render_warm_up_count,
#                                              render_warm_up_frames, use_camera_cut_for_warm_up)
#   class/MoviePipelineCameraSetting         (render_all_cameras [5.1+], shutter_timing,
#                                              overscan_percentage, override_camera_overscan [5.4+])
#   class/MoviePipelinePIEExecutor, class/MoviePipelineInProcessExecutor,
#   class/MoviePipelineLinearExecutorBase, class/MoviePipelineExecutorBase
#                                             (on_executor_finished_delegate,
#                                              on_executor_errored_delegate,
#                                              on_individual_job_work_finished_delegate)
#   class/OnMoviePipelineExecutorFinished    (pipeline_executor, success)
#   class/OnMoviePipelineExecutorErrored     (pipeline_executor, pipeline_with_error, is_fatal, error_text)
#   class/MoviePipelineWorkFinished, class/MoviePipelineOutputData (pipeline, job, success)
#   class/MoviePipelineShutterTiming, class/AntiAliasingMethod (5.0 page; not exported in the 5.6 stub)
# The depth and mask passes (UE 5.3-5.6 pages, checked against the engine headers the properties come from,
# MoviePipelineDeferredPasses.h and MoviePipelineEXROutput.h of the MovieRenderPipelineRenderPasses module):
#   class/MoviePipelineDeferredPassBase      (additional_post_process_materials: Array[MoviePipelinePostProcessPass],
#                                              use32_bit_post_process_materials [bUse32BitPostProcessMaterials,
#                                              5.3-5.6; deprecated for a per-pass bHighPrecisionOutput later],
#                                              render_main_pass)
#   struct/MoviePipelinePostProcessPass      (enabled [bEnabled], material [TSoftObjectPtr<UMaterialInterface>])
#   class/MoviePipelineImageSequenceOutput_EXR (compression: EXRCompressionFormat, multilayer [bMultilayer])
#   class/EXRCompressionFormat               (EEXRCompressionFormat: None, PIZ, ZIP -> NONE, PIZ, ZIP)
#
# Editor properties are declared as plain attributes: they are read/write properties in the engine
# (the generated stub spells them as @property pairs, which mypy treats the same way).

# <lint-only-imports> (dropped when appended to the engine stub, which defines these names)

from unreal import (
    Array,
    Class,
    DirectoryPath,
    EditorSubsystem,
    EnumBase,
    FrameRate,
    IntPoint,
    MaterialInterface,
    MulticastDelegateBase,
    Object,
    SoftObjectPath,
    StructBase,
)

# </lint-only-imports>

class AntiAliasingMethod(EnumBase):
    AAM_NONE: AntiAliasingMethod
    AAM_FXAA: AntiAliasingMethod
    AAM_TEMPORAL_AA: AntiAliasingMethod
    AAM_MSAA: AntiAliasingMethod
    AAM_TSR: AntiAliasingMethod

class MoviePipelineShutterTiming(EnumBase):
    FRAME_OPEN: MoviePipelineShutterTiming
    FRAME_CENTER: MoviePipelineShutterTiming
    FRAME_CLOSE: MoviePipelineShutterTiming

class MoviePipelineSetting(Object):
    def is_enabled(self) -> bool: ...
    def set_is_enabled(self, enabled: bool) -> None: ...

class MoviePipelineOutputSetting(MoviePipelineSetting):
    output_directory: DirectoryPath
    file_name_format: str
    output_resolution: IntPoint
    use_custom_playback_range: bool
    custom_start_frame: int
    custom_end_frame: int
    use_custom_frame_rate: bool
    output_frame_rate: FrameRate
    zero_pad_frame_numbers: int
    frame_number_offset: int
    handle_frame_count: int
    override_existing_output: bool
    flush_disk_writes_per_shot: bool

class MoviePipelineRenderPass(MoviePipelineSetting): ...
class MoviePipelineImagePassBase(MoviePipelineRenderPass): ...

class MoviePipelinePostProcessPass(StructBase):
    enabled: bool
    material: MaterialInterface
    def __init__(self, enabled: bool = ..., material: MaterialInterface = ...) -> None: ...

class MoviePipelineDeferredPassBase(MoviePipelineImagePassBase):
    disable_multisample_effects: bool
    accumulator_includes_alpha: bool
    use32_bit_post_process_materials: bool
    render_main_pass: bool
    # read back as an unreal.Array; assigning takes any Python list of the struct (the editor converts sequences)
    additional_post_process_materials: Array[MoviePipelinePostProcessPass] | list[MoviePipelinePostProcessPass]

class MoviePipelineDeferredPass_Unlit(MoviePipelineDeferredPassBase): ...
class MoviePipelineOutputBase(MoviePipelineSetting): ...
class MoviePipelineImageSequenceOutputBase(MoviePipelineOutputBase): ...
class MoviePipelineImageSequenceOutput_PNG(MoviePipelineImageSequenceOutputBase):
    write_alpha: bool
class EXRCompressionFormat(EnumBase):
    NONE: EXRCompressionFormat
    PIZ: EXRCompressionFormat
    ZIP: EXRCompressionFormat

class MoviePipelineImageSequenceOutput_EXR(MoviePipelineImageSequenceOutputBase):
    compression: EXRCompressionFormat
    multilayer: bool

class MoviePipelineAntiAliasingSetting(MoviePipelineSetting):
    spatial_sample_count: int
    temporal_sample_count: int
    override_anti_aliasing: bool
    anti_aliasing_method: AntiAliasingMethod
    engine_warm_up_count: int
    render_warm_up_count: int
    render_warm_up_frames: bool
    use_camera_cut_for_warm_up: bool

class MoviePipelineCameraSetting(MoviePipelineSetting):
    render_all_cameras: bool
    shutter_timing: MoviePipelineShutterTiming
    overscan_percentage: float
    override_camera_overscan: bool

class MoviePipelineConfigBase(Object):
    def find_or_add_setting_by_class(self, class_: Class | type, include_disabled_settings: bool = ...,
                                     exact_match: bool = ...) -> MoviePipelineSetting: ...
    def find_setting_by_class(self, class_: Class | type, include_disabled_settings: bool = ...,
                              exact_match: bool = ...) -> MoviePipelineSetting: ...
    def remove_setting(self, setting: MoviePipelineSetting) -> None: ...
    def get_user_settings(self) -> Array[MoviePipelineSetting]: ...

class MoviePipelinePrimaryConfig(MoviePipelineConfigBase):
    ...

class MoviePipelineExecutorJob(Object):
    job_name: str
    map: SoftObjectPath
    sequence: SoftObjectPath
    author: str
    comment: str
    user_data: str
    def get_configuration(self) -> MoviePipelinePrimaryConfig: ...
    def set_configuration(self, preset: MoviePipelinePrimaryConfig) -> None: ...

class MoviePipelineQueue(Object):
    def allocate_new_job(self, job_type: Class | type = ...) -> MoviePipelineExecutorJob: ...
    def delete_all_jobs(self) -> None: ...
    def delete_job(self, job: MoviePipelineExecutorJob) -> None: ...
    def get_jobs(self) -> Array[MoviePipelineExecutorJob]: ...

class MoviePipelineBase(Object): ...
class MoviePipeline(MoviePipelineBase): ...

class MoviePipelineOutputData(StructBase):
    pipeline: MoviePipelineBase
    job: MoviePipelineExecutorJob
    success: bool

class OnMoviePipelineExecutorFinished(MulticastDelegateBase): ...
class OnMoviePipelineExecutorErrored(MulticastDelegateBase): ...
class MoviePipelineWorkFinished(MulticastDelegateBase): ...

class MoviePipelineExecutorBase(Object):
    on_executor_finished_delegate: OnMoviePipelineExecutorFinished
    on_executor_errored_delegate: OnMoviePipelineExecutorErrored
    def is_rendering(self) -> bool: ...
    def cancel_all_jobs(self) -> None: ...

class MoviePipelineLinearExecutorBase(MoviePipelineExecutorBase): ...

class MoviePipelinePIEExecutor(MoviePipelineLinearExecutorBase):
    on_individual_job_work_finished_delegate: MoviePipelineWorkFinished

class MoviePipelineInProcessExecutor(MoviePipelineLinearExecutorBase):
    use_current_level: bool

class MoviePipelineQueueSubsystem(EditorSubsystem):
    def get_queue(self) -> MoviePipelineQueue: ...
    def get_active_executor(self) -> MoviePipelineExecutorBase: ...
    def is_rendering(self) -> bool: ...
    def render_queue_with_executor(self, executor_type: Class | type) -> MoviePipelineExecutorBase: ...
    def render_queue_with_executor_instance(self, executor: MoviePipelineExecutorBase) -> None: ...
