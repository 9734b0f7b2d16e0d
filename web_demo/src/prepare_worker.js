// The page's Web Worker: reads, decodes and preprocesses a series (src/prepare.js) while the
// page's thread runs the model. Receives {id, files: [{file, name}], rules, checks}; posts each message
// of prepareSeries() with the id (images transferred, not copied), then {id, type: 'done'}, or
// {id, type: 'error', dicom, message}.

import '../vendor/dicomParser.mjs';
import { DicomError } from './dicom.js';
import { prepareSeries } from './prepare.js';

self.addEventListener('message', async (event) => {
  const { id, files, rules, checks } = event.data;
  try {
    for await (const message of prepareSeries(files, rules, checks)) {
      self.postMessage({ id, ...message }, message.image ? [message.image.buffer] : []);
    }
    self.postMessage({ id, type: 'done' });
  } catch (err) {
    self.postMessage({ id, type: 'error', dicom: err instanceof DicomError, message: String(err && err.message ? err.message : err) });
  }
});
