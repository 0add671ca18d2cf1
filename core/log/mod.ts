/** Run logging: TensorBoard event files, the plain train.log, and the progress bar. */

export { crc32c, maskedCrc32c } from "./crc32c.ts";
export {
  encodeEvent,
  histogramOf,
  readTfRecords,
  TensorBoardWriter,
  tfRecord,
} from "./tensorboard.ts";
export { formatNumber, TextLog } from "./text_log.ts";
export { formatDuration, humanCount, ProgressBar, SmoothedValue } from "./progress.ts";
