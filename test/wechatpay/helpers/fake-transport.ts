/** One merchant's real Transport against the fake WeChat Pay (public-key mode): the setup shared by the endpoint tests. */
import { RequestSigner } from '../../../shared/wechatpay/sign';
import { Transport } from '../../../shared/wechatpay/transport';
import { PublicKeySource, Verifier } from '../../../shared/wechatpay/verify';
import { startFakeWechatPay, type FakeWechatPay } from './fake-wechatpay';
import type { RsaPair } from './keys';

export async function startFakeTransport(opts: { mchid: string; merchant: RsaPair; wx: RsaPair; pubId: string }): Promise<{ fake: FakeWechatPay; api: Transport }> {
  const fake = await startFakeWechatPay({ merchantPublicKey: opts.merchant.publicKey, signer: { serial: opts.pubId, key: opts.wx.privateKey } });
  const api = new Transport({
    signer: new RequestSigner({ mchid: opts.mchid, serialNo: '5157F09EFDC096DE15EBE81A47057A7232F1B8E1', privateKey: opts.merchant.privateKey }),
    verifier: new Verifier({ keys: new PublicKeySource([[opts.pubId, opts.wx.publicKey]]) }),
    baseUrl: fake.url,
    backoffBaseMs: 5,
    wechatpaySerial: () => opts.pubId,
  });
  return { fake, api };
}
