/** Entry of the customer display (customer.html): its feed only, none of the cashier's screens. */
import { render } from 'preact';
import { Customer } from './Customer';

render(<Customer />, document.getElementById('customer-root')!);
