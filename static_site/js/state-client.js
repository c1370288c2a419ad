// GET /v1/state, signed in the browser with SigV4 (service execute-api), as API Gateway's IAM
// authorizer requires. Signing needs crypto.subtle, which browsers only give secure contexts.
import { AwsClient } from "../vendor/aws4fetch.esm.mjs";
import { ApiFailure, failureFromResponse, jsonBody, networkFailure } from "./api.js";

/** True when this page may sign requests (https, localhost or 127.0.0.1). */
export function canSign() {
  return Boolean(window.isSecureContext && window.crypto && window.crypto.subtle);
}

export class StateClient {
  /**
   * apiUrl: API base ending in "/"; credentials: {accessKeyId, secretAccessKey, sessionToken?};
   * region: the API's AWS region (part of the signature scope).
   */
  constructor(apiUrl, region, credentials) {
    this.apiUrl = apiUrl;
    this.aws = new AwsClient({
      accessKeyId: credentials.accessKeyId,
      secretAccessKey: credentials.secretAccessKey,
      sessionToken: credentials.sessionToken || undefined,
      region,
      service: "execute-api",
      // The poll loop is the retry: a 5xx must surface now, not after aws4fetch's backoff.
      retries: 0,
    });
  }

  /**
   * One snapshot ({generated_at, routers: [...]}); throws ApiFailure. `historySince` (epoch
   * seconds of the newest history point the page has) asks only for newer history points.
   */
  async fetchState(router = null, historySince = null) {
    const url = new URL("v1/state", this.apiUrl);
    if (router) url.searchParams.set("router", router);
    if (Number.isFinite(historySince)) url.searchParams.set("history_since", String(Math.floor(historySince)));
    let response;
    try {
      response = await this.aws.fetch(url.toString(), { method: "GET", cache: "no-store" });
    } catch (error) {
      throw networkFailure(error);
    }
    if (!response.ok) throw await failureFromResponse(response);
    const body = await jsonBody(response);
    if (!body || !Array.isArray(body.routers)) {
      throw new ApiFailure("server", response.status, "the answer has no routers list: is this the router's API URL?");
    }
    return body;
  }
}
